"""A local HTTP server that speaks enough of wandb's GraphQL wire protocol for the real `wandb.Api` client.

It serves runs we decoded from real offline `.wandb` files, so the cloud source is tested with the real client
(wandb 0.31 routes every public-API query through its `wandb-core` sidecar, which POSTs to `<base_url>/graphql`;
only a real server on loopback can answer). Rows are served as they were logged (read from the run's `.wandb`
records when there is one): a key a step did not log is absent, a logged NaN / +-inf comes back as the strings
"NaN" / "Infinity" / "-Infinity" in JSON (as wandb's backend returns them) and as float NaN / inf in Parquet.
Operations, dispatched on the query text:

    Viewer / GetDefaultEntity       viewer{...}
    Runs                            project{runs{edges[{node, cursor}], pageInfo}} (paged by `perPage`/`cursor`)
    Run                             project{run{...}} (config and summaryMetrics are JSON strings)
    RunHistoryKeys                  run.historyKeys {"lastStep": N, "keys": {}}
    RunParquetHistory               run.parquetHistory{parquetUrls, liveData}: signed-URL stand-ins for Parquet
                                    exports of the steps before `exported_upto` (written with pyarrow, served by
                                    GET/HEAD /parquet/<name> with byte ranges), plus one {"_step": n} per live step
    HistoryPage / RunFullHistory    run.history(minStep, maxStep, samples): rows as JSON strings (sampled evenly
                                    when there are more rows than `samples`, as the real server does)
    SampledHistoryPage / RunSampledHistory   run.sampledHistory(specs): rows holding every key of a spec
    RunFiles                        file listing with download URLs on this server; GET /files/<id>/<path>

Switches: `unauthorised = True` answers 401 to everything (a revoked key); `offers_parquet = False` answers a
query naming `parquetHistory` with the GraphQL validation error of a server that predates Parquet exports;
`exported_upto = n` exports steps < n only (None: every step; 0: nothing exported, everything live);
`parquet_parts` splits the export into that many files; `max_samples` caps the rows one history query returns
(a server that samples long histories whatever `samples` asks). `queries` lists the operation names seen,
`downloads` the Parquet requests ("GET name [Range]" / "HEAD name"). Unknown operations get a GraphQL error
naming them. The client (wandb-core) downloads whole files when it reads every key and reads byte ranges when
`scan_history(keys=...)` names some.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from analysis.core.run import ReadStatus, Run

_BIG = 1 << 62


def _finite(v):
    """NaN and +-Infinity are not JSON: summaries drop them here."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _wire(v):
    """A logged value as wandb's backend returns it in JSON: non-finite floats become "NaN" / "Infinity"."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: _wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_wire(x) for x in v]
    return v


def _logged_rows(run: Run) -> list[dict]:
    """The run's history rows exactly as logged (from its `.wandb` records), or rebuilt from the frame."""
    from analysis.sources._logfile import iter_payloads
    from analysis.sources._rundir import wandb_file

    try:
        path = wandb_file(Path(run.ref.locator))
    except Exception:
        path = None
    if path is not None:
        from wandb.proto import wandb_internal_pb2 as pb

        rows = []
        for payload in iter_payloads(path, ReadStatus()):
            rec = pb.Record()  # type: ignore[attr-defined]
            rec.ParseFromString(payload)
            if rec.WhichOneof("record_type") != "history":
                continue
            row: dict[str, Any] = {}
            for it in rec.history.item:
                key_path = [it.key] if it.key else list(it.nested_key)
                if key_path[0].startswith("_wandb"):
                    continue
                at = row
                for part in key_path[:-1]:  # a logged dict (a media value) arrives as one item per nested key
                    at = at.setdefault(part, {})
                at[key_path[-1]] = json.loads(it.value_json)  # json accepts the NaN / Infinity tokens wandb writes
            if "_step" not in row:
                row["_step"] = rec.history.step.num
            rows.append(row)
        return sorted(rows, key=lambda r: r["_step"])
    out = []
    for rec in run.history.to_dict("records"):
        row = {}
        for k, v in rec.items():
            k = str(k)
            if isinstance(v, float) and math.isnan(v):
                continue  # the frame cannot tell a logged NaN from a missing value: treat it as missing
            row[k] = v.item() if hasattr(v, "item") else v
        out.append(row)
    return out


def _write_parquet(rows: list[dict], path: Path) -> None:
    """One Parquet export of `rows`: one column per key, null where a step did not log it, `_step` int64."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = sorted({k for r in rows for k in r} - {"_step"})
    columns = {"_step": pa.array([r["_step"] for r in rows], pa.int64())}
    for k in keys:
        values = [r.get(k) for r in rows]
        try:
            columns[k] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in one key: kept as JSON text
            columns[k] = pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
    pq.write_table(pa.table(columns), path)


def _sample(rows: list, samples) -> list:
    """At most `samples` rows, evenly spaced, first and last kept (the server's sampling of long histories)."""
    if samples is None or int(samples) >= len(rows) or len(rows) < 2:
        return rows
    n = max(int(samples), 2)
    return [rows[round(i * (len(rows) - 1) / (n - 1))] for i in range(n)]


class StubServer:
    """`with StubServer({"entity/project": [runs]}) as s: s.url` serves those runs on 127.0.0.1."""

    def __init__(self, projects: dict[str, list[Run]], entity: str = "local") -> None:
        self.projects = projects
        self.entity = entity
        self.unauthorised = False
        self.offers_parquet = True
        self.exported_upto: int | None = None
        self.parquet_parts = 1
        self.max_samples: int | None = None  # a server that caps `samples` (returns a sample of long histories)
        self.queries: list[str] = []  # operation names seen, in order
        self.downloads: list[str] = []  # "GET name [Range]" / "HEAD name" of Parquet files
        self._rows: dict[str, list[dict]] = {}
        self._exports: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="wandb-stub-")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://{host.decode()}:{port}"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._tmp.cleanup()

    # ------------------------------------------------------------------------------------------------------
    def find(self, entity: str | None, project: str | None, run_id: str | None) -> Run | None:
        for r in self.projects.get(f"{entity or self.entity}/{project}", []):
            if r.ref.run_id == run_id:
                return r
        return None

    def rows(self, r: Run, lo: int = 0, hi: int = _BIG) -> list[dict]:
        """The run's logged rows with lo <= _step < hi (decoded once per run)."""
        with self._lock:
            if r.ref.run_id not in self._rows:
                self._rows[r.ref.run_id] = _logged_rows(r)
        return [row for row in self._rows[r.ref.run_id] if lo <= row["_step"] < hi]

    def parquet_urls(self, r: Run, base: str) -> list[str]:
        """Export the run's steps before `exported_upto` into `parquet_parts` files; their URLs on this server."""
        rows = self.rows(r, 0, _BIG if self.exported_upto is None else self.exported_upto)
        if not rows:
            return []
        parts = max(1, min(self.parquet_parts, len(rows)))
        names = []
        for i in range(parts):
            name = f"{r.ref.run_id}-{self.exported_upto}-{parts}-{i}.parquet"
            with self._lock:
                if name not in self._exports:
                    path = Path(self._tmp.name) / name
                    _write_parquet(rows[i * len(rows) // parts : (i + 1) * len(rows) // parts], path)
                    self._exports[name] = path
            names.append(name)
        return [f"{base}/parquet/{n}?X-Amz-Signature=stub" for n in names]

    def cap(self, samples):
        if self.max_samples is None:
            return samples
        return self.max_samples if samples is None else min(int(samples), self.max_samples)

    def node(self, r: Run) -> dict:
        last = int(r.history["_step"].max()) if len(r.history) else -1
        return {
            "id": "run-" + r.ref.run_id,
            "name": r.ref.run_id,
            "displayName": r.ref.name,
            "state": r.ref.state,
            "config": json.dumps({k: {"value": v, "desc": None} for k, v in r.config.items()}),
            "summaryMetrics": json.dumps({k: _finite(v) for k, v in r.summary.items()}),
            "systemMetrics": "{}",
            "historyKeys": {"lastStep": last, "keys": {}},
            "historyLineCount": len(r.history),
            "tags": r.tags,
            "notes": r.notes,
            "group": None,
            "jobType": None,
            "sweepName": None,
            "commit": None,
            "readOnly": False,
            "projectId": 1,
            "createdAt": r.ref.created.strftime("%Y-%m-%dT%H:%M:%S") if r.ref.created else "2026-01-01T00:00:00",
            "heartbeatAt": None,
            "description": r.notes,
            "user": {"name": "local", "username": "local"},
        }

    def answer(self, query: str, v: dict, base: str) -> tuple[int, dict]:
        op = re.search(r"\b(?:query|mutation)\s+(\w+)", query)
        self.queries.append(op.group(1) if op else "?")
        if "parquetHistory" in query and not self.offers_parquet:  # a server from before Parquet exports
            where = {"line": 5, "column": 4}
            error = {"message": 'Cannot query field "parquetHistory" on type "Run".', "locations": [where]}
            return 200, {"errors": [error]}
        if "viewer" in query:
            return 200, {
                "data": {
                    "viewer": {
                        "id": "u1",
                        "entity": self.entity,
                        "username": "local",
                        "email": None,
                        "flags": "{}",
                        "admin": False,
                        "teams": {"edges": []},
                    }
                }
            }
        if "runs(" in query:
            key = f"{v.get('entity') or self.entity}/{v.get('project')}"
            if key not in self.projects:
                return 200, {"data": {"project": None}}
            runs = sorted(self.projects[key], key=lambda r: r.ref.created or 0, reverse=True)
            start = int(v.get("cursor") or 0)
            per = int(v.get("perPage") or 50)
            page = runs[start : start + per]
            more = start + per < len(runs)
            return 200, {
                "data": {
                    "project": {
                        "internalId": "p1",
                        "runCount": len(runs),
                        "readOnly": False,
                        "runs": {
                            "edges": [{"node": self.node(r), "cursor": str(start + i + 1)} for i, r in enumerate(page)],
                            "pageInfo": {"endCursor": str(start + len(page)) if more else None, "hasNextPage": more},
                        },
                    }
                }
            }
        if "run(" in query:
            r = self.find(v.get("entity"), v.get("project"), v.get("name") or v.get("run") or v.get("runName"))
            node = None if r is None else self.run_fields(r, query, v, base)
            return 200, {"data": {"project": {"internalId": "p1", "run": node}}}
        return 200, {"data": None, "errors": [{"message": f"operation not handled by the stub: {query[:80]}"}]}

    def run_fields(self, r: Run, query: str, v: dict, base: str) -> dict | None:
        node = self.node(r)
        if "parquetHistory" in query:
            live_from = _BIG if self.exported_upto is None else self.exported_upto
            node["parquetHistory"] = {
                "parquetUrls": self.parquet_urls(r, base),
                "liveData": [{"_step": row["_step"]} for row in self.rows(r, live_from)],
            }
        if "sampledHistory" in query:
            specs = [json.loads(s) for s in v["specs"]] if "specs" in v else [json.loads(v["spec"])]
            inclusive = 1 if "spec" in v else 0  # SampledHistoryPage sends an inclusive maxStep
            node["sampledHistory"] = [
                _sample(
                    [
                        {k: _wire(row[k]) for k in spec["keys"] if k in row}
                        for row in self.rows(r, spec.get("minStep", 0), spec.get("maxStep", _BIG - 1) + inclusive)
                        if all(k in row for k in spec["keys"])
                    ],
                    self.cap(spec.get("samples")),
                )
                for spec in specs
            ]
        if re.search(r"\bhistory\(", query):
            rows = self.rows(r, v.get("minStep", 0), v.get("maxStep", _BIG))
            node["history"] = [
                json.dumps(_wire(x)) for x in _sample(rows, self.cap(v.get("samples", v.get("pageSize"))))
            ]
        if "files(" in query:
            names = v.get("fileNames") or []
            files_dir = Path(r.files_dir) if r.files_dir else None
            listed = (
                sorted(str(p.relative_to(files_dir)) for p in files_dir.rglob("*") if p.is_file())
                if files_dir and files_dir.is_dir()
                else []
            )
            chosen = [f for f in listed if not names or f in names]
            node["fileCount"] = len(chosen)
            node["files"] = {
                "edges": [
                    {
                        "cursor": str(i),
                        "node": {
                            "id": f"f{i}",
                            "name": f,
                            "url": f"{base}/files/{r.ref.run_id}/{f}",
                            "directUrl": f"{base}/files/{r.ref.run_id}/{f}",
                            "mimetype": None,
                            "updatedAt": None,
                            "md5": None,
                            "sizeBytes": (files_dir / f).stat().st_size if files_dir else 0,
                        },
                    }
                    for i, f in enumerate(chosen)
                ],
                "pageInfo": {"endCursor": None, "hasNextPage": False},
            }
        return node

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, body: bytes | str, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _parquet(self, head: bool) -> bool:
                """Serve an exported Parquet file like a signed object-store URL: whole, or a byte range."""
                m = re.match(r"/parquet/([^/?]+)", self.path)
                if not m:
                    return False
                stub.downloads.append(
                    f"{'HEAD' if head else 'GET'} {m.group(1)} {self.headers.get('Range') or ''}".strip()
                )
                path = stub._exports.get(m.group(1))
                if path is None:
                    self._send(404, "<Error><Code>NoSuchKey</Code></Error>", "application/xml")
                    return True
                data = path.read_bytes()
                total = len(data)
                rng = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range") or "")
                code, extra = 200, {}
                if rng and not head and (rng.group(1) or rng.group(2)):
                    if rng.group(1):  # bytes=lo-hi or bytes=lo-
                        lo = int(rng.group(1))
                        hi = min(int(rng.group(2)) if rng.group(2) else total - 1, total - 1)
                    else:  # bytes=-n: the last n bytes
                        lo, hi = max(total - int(rng.group(2)), 0), total - 1
                    code, data = 206, data[lo : hi + 1]
                    extra["Content-Range"] = f"bytes {lo}-{hi}/{total}"
                self.send_response(code)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                return True

            def do_HEAD(self) -> None:
                if not self._parquet(head=True):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_GET(self) -> None:
                if stub.unauthorised:
                    return self._send(401, '{"errors": [{"message": "unauthorized"}]}')
                if self._parquet(head=False):
                    return None
                m = re.match(r"/files/([^/]+)/(.+)", self.path)
                if m:
                    for runs in stub.projects.values():
                        for r in runs:
                            if r.ref.run_id == m.group(1) and r.files_dir:
                                p = Path(r.files_dir) / m.group(2)
                                if p.is_file():
                                    return self._send(200, p.read_bytes(), "application/octet-stream")
                self._send(404, "{}")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/graphql":  # wandb-core telemetry and the like
                    return self._send(200, "{}")
                if stub.unauthorised:
                    return self._send(401, '{"errors": [{"message": "unauthorized"}]}')
                body = json.loads(raw or b"{}")
                code, out = stub.answer(
                    body.get("query", ""), body.get("variables") or {}, f"http://{self.headers['Host']}"
                )
                self._send(code, json.dumps(out))

        return Handler
