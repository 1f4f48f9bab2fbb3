"""Write synthetic `.wandb` files with wandb's own protobuf classes, for layouts the installed wandb never writes.

`write_synthetic({path: spec, ...})` builds each file in one subprocess (importing wandb wraps sys.stdout, so it
stays out of the test process). A spec is `{"version": 0|1, "records": [...]}` where a record is one of

    {"run": {"run_id": ..., "display_name": ..., "project": ..., "starting_step": 0, "config": {...}}}
    {"history": {"key": value, ...}, "step": N (optional), "legacy": bool (use `key` instead of `nested_key`)}
    {"summary": {"key": value, ...}}
    {"exit": code}

The framing (32 KiB blocks, CRC-checked chunks) is written here independently of the reader under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.wandb_writer import wandb_env

_SCRIPT = r"""
import json, sys
from wandb.proto import wandb_internal_pb2 as pb

from tests.wandb_synth import reframe  # one framing for both (this script runs in the checkout)


def frame(records, version):
    return reframe([rec.SerializeToString() for rec in records], version)

def items(target, values, legacy):
    for k, v in values.items():
        it = target.add()
        if legacy:
            it.key = k
        else:
            it.nested_key.append(k)
        it.value_json = v if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity") else json.dumps(v)

for path, spec in json.load(open(sys.argv[1])).items():
    recs = []
    for r in spec["records"]:
        rec = pb.Record()
        if "run" in r:
            run = r["run"]
            rec.run.run_id = run["run_id"]
            rec.run.display_name = run.get("display_name", "")
            rec.run.project = run.get("project", "p")
            rec.run.starting_step = run.get("starting_step", 0)
            for t in run.get("tags", []):
                rec.run.tags.append(t)
            items(rec.run.config.update, run.get("config", {}), False)
        elif "history" in r:
            items(rec.history.item, r["history"], r.get("legacy", False))
            if "step" in r:
                rec.history.step.num = r["step"]
        elif "summary" in r:
            items(rec.summary.update, r["summary"], False)
        elif "exit" in r:
            rec.exit.exit_code = r["exit"]
        recs.append(rec)
    open(path, "wb").write(frame(recs, spec.get("version", 0)))
"""


def write_synthetic(files: dict[Path, dict], workdir: Path) -> None:
    for p in files:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    spec = workdir / "synth-spec.json"
    spec.write_text(json.dumps({str(p): s for p, s in files.items()}))
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(spec)],
        env=wandb_env(workdir),
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"synthetic writer failed: {proc.stderr[-2000:]}")


def history_record_ends(path: Path) -> list[int]:
    """End offset of every history record, from a clean scan of an intact .wandb file."""
    from analysis.core.run import ReadStatus
    from analysis.sources._logfile import iter_payloads
    from analysis.sources._schema import Record

    status, rec, ends = ReadStatus(), Record(), []
    for payload in iter_payloads(path, status):
        rec.ParseFromString(payload)
        if rec.WhichOneof("record_type") == "history":
            ends.append(status.bytes_read)
    return ends


def record_payloads(path: Path) -> list[bytes]:
    """The payload of every checksummed record of a .wandb file, in order (the reader's own scan)."""
    from analysis.core.run import ReadStatus
    from analysis.sources._logfile import iter_payloads

    return list(iter_payloads(path, ReadStatus()))


def reframe(payloads: list[bytes], version: int = 0) -> bytes:
    """A .wandb file holding `payloads` as records, every chunk with a valid checksum (framing written here,
    independently of the reader): how a test plants records that are checksummed but malformed."""
    import struct
    import zlib

    block = 32768
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, version))
    for data in payloads:
        first = True
        while True:
            left = block - len(out) % block
            if left < 7:
                out += b"\0" * left
                left = block
            piece, data = data[: left - 7], data[left - 7 :]
            last = not data
            kind = 1 if first and last else 2 if first else 4 if last else 3
            out += struct.pack("<IHB", zlib.crc32(bytes([kind]) + piece), len(piece), kind) + piece
            first = False
            if last:
                break
    return bytes(out)
