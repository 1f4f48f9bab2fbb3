"""Write real wandb offline runs for tests, in a subprocess (wandb keeps global state and wraps stdout).

`write_run(wandb_parent, name, rows)` calls `wandb.init(dir=wandb_parent)` then `wandb.log(row)` for each row and
`run.finish()`, with WANDB_MODE=offline. Rows are JSON-able dicts; a value `{"__image__": [h, w]}` becomes a
`wandb.Image` of that size. Returns the run folder (`<wandb_parent>/wandb/offline-run-...`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_SCRIPT = r"""
import json, os, sys
import numpy as np
import wandb
spec = json.load(open(sys.argv[1]))
def conv(v):
    if isinstance(v, dict) and "__image__" in v:
        h, w = v["__image__"]
        arr = (np.arange(h * w * 3) % 251).reshape(h, w, 3).astype("uint8")
        return wandb.Image(arr, caption=f"{h}x{w}")
    if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity"):
        return float(v.replace("Infinity", "inf"))
    return v
run = wandb.init(project=spec["project"], name=spec["name"], config=spec["config"], dir=spec["dir"],
                 tags=spec.get("tags") or None, notes=spec.get("notes"), id=spec.get("run_id"))
for row in spec["rows"]:
    wandb.log({k: conv(v) for k, v in row.items()})
for k, v in (spec.get("summary") or {}).items():
    run.summary[k] = v
if spec.get("crash"):
    os._exit(0)  # no finish, no exit record
run.finish(exit_code=spec.get("exit_code", 0))
print(run.dir)
"""


def wandb_env(base: Path) -> dict[str, str]:
    """Environment for an offline wandb process that writes nothing outside `base`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    for var, sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config")):
        (base / ".wandb_home" / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(base / ".wandb_home" / sub)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true")
    return env


def write_run(
    wandb_parent: Path,
    name: str,
    rows: list[dict],
    *,
    config: dict | None = None,
    summary: dict | None = None,
    project: str = "tests",
    tags: list[str] | None = None,
    notes: str | None = None,
    exit_code: int = 0,
    crash: bool = False,
    run_id: str | None = None,
) -> Path:
    wandb_parent = Path(wandb_parent)
    wandb_parent.mkdir(parents=True, exist_ok=True)
    spec = {
        "project": project,
        "name": name,
        "config": config or {},
        "dir": str(wandb_parent),
        "rows": rows,
        "summary": summary,
        "tags": tags,
        "notes": notes,
        "exit_code": exit_code,
        "crash": crash,
        "run_id": run_id,
    }
    spec_path = wandb_parent / f".spec-{name.encode().hex()[:40]}.json"
    spec_path.write_text(json.dumps(spec, allow_nan=True))
    before = set((wandb_parent / "wandb").glob("*run-*")) if (wandb_parent / "wandb").exists() else set()
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(spec_path)],
        env=wandb_env(wandb_parent),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wandb writer failed: {proc.stderr[-2000:]}")
    new = sorted(set((wandb_parent / "wandb").glob("*run-*")) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new run folder, found {new}")
    return new[0]


def write_sessions(base: Path, script: str, argument_lists: list[list[str]]) -> None:
    """Run the wandb script `script` once per argument list (`python script <base> *arguments`), offline under
    `base`, one after the other: the sessions of a resumed run, or runs whose folders must sort by start time (folder
    names carry the second a run started, hence the pause after each)."""
    path = base / "write_sessions.py"
    path.write_text(script)
    for arguments in argument_lists:
        subprocess.run(
            [sys.executable, str(path), str(base), *arguments],
            env=wandb_env(base),
            check=True,
            capture_output=True,
            timeout=120,
        )
        time.sleep(1.1)


@contextlib.contextmanager
def silent_wandb_service() -> Iterator[str]:
    """A Unix socket that accepts wandb's connection and never answers: a wandb service that stopped responding.
    Yields the `WANDB_SERVICE` token a process inherits from a parent whose wandb used that service."""
    folder = Path(tempfile.mkdtemp(prefix="wsvc-", dir="/tmp"))  # a socket path must stay under ~100 bytes
    path = folder / "socket"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the socket is closed at the end
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"3-{os.getpid()}-unix-{path}"  # wandb's token format: version-parent pid-kind-address
    finally:
        server.close()
        for conn in accepted:
            conn.close()
        shutil.rmtree(folder, ignore_errors=True)
