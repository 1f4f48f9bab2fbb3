"""A local HTTP server that speaks enough of wandb's GraphQL wire protocol for the real `wandb.Api` client.

It serves runs we decoded from real offline `.wandb` files, so the cloud source is tested with the real client
(wandb 0.31 routes every public-API query through its `wandb-core` sidecar, which POSTs to `<base_url>/graphql`;
only a real server on loopback can answer). Operations, dispatched on the query text:

    Viewer / GetDefaultEntity       viewer{...}
    Runs                            project{runs{edges[{node, cursor}], pageInfo}} (paged by `perPage`/`cursor`)
    Run                             project{run{...}} (config and summaryMetrics are JSON strings)
    RunHistoryKeys                  run.historyKeys {"lastStep": N, "keys": {}}
    RunParquetHistory               no parquet exports: every row comes from the live queries below
    HistoryPage / SampledHistoryPage / RunFullHistory / RunSampledHistory   rows as JSON strings or objects
    RunFiles                        file listing with download URLs on this server; GET /files/<id>/<path>

`StubServer.unauthorised = True` answers 401 to everything (a revoked key). Unknown operations get a GraphQL
error naming them, so gaps show up in test failures.
"""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from analysis.core.run import Run

_BIG = 1 << 62


def _finite(v):
    """NaN and +-Infinity are not JSON: a real server drops them, so does the stub."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _rows(run: Run, lo: int = 0, hi: int = _BIG) -> list[dict]:
    h = run.history
    h = h[(h["_step"] >= lo) & (h["_step"] < hi)]
    out = []
    for rec in h.to_dict("records"):
        row = {}
        for k, v in rec.items():
            if isinstance(v, float) and math.isnan(v):
                continue  # absent in this row
            v = _finite(v)
            if v is not None:
                row[k] = v.item() if hasattr(v, "item") else v
        out.append(row)
    return out


class StubServer:
    """`with StubServer({"entity/project": [runs]}) as s: s.url` serves those runs on 127.0.0.1."""

    def __init__(self, projects: dict[str, list[Run]], entity: str = "local") -> None:
        self.projects = projects
        self.entity = entity
        self.unauthorised = False
        self.queries: list[str] = []  # operation names seen, in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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

    # ------------------------------------------------------------------------------------------------------
    def find(self, entity: str | None, project: str | None, run_id: str | None) -> Run | None:
        for r in self.projects.get(f"{entity or self.entity}/{project}", []):
            if r.ref.run_id == run_id:
                return r
        return None

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

    def run_fields(self, r: Run, query: str, v: dict, base: str) -> dict:
        node = self.node(r)
        if "parquetHistory" in query:
            node["parquetHistory"] = {"parquetUrls": [], "liveData": [{"_step": 0}]}
        if "sampledHistory" in query:
            specs = [json.loads(s) for s in v["specs"]] if "specs" in v else [json.loads(v["spec"])]
            inclusive = 1 if "spec" in v else 0  # SampledHistoryPage sends an inclusive maxStep
            node["sampledHistory"] = [
                [
                    {k: row[k] for k in spec["keys"] if k in row}
                    for row in _rows(r, spec.get("minStep", 0), spec.get("maxStep", _BIG - 1) + inclusive)
                    if all(k in row for k in spec["keys"])
                ]
                for spec in specs
            ]
        if re.search(r"\bhistory\(", query):
            node["history"] = [json.dumps(x) for x in _rows(r, v.get("minStep", 0), v.get("maxStep", _BIG))]
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

            def do_GET(self) -> None:
                if stub.unauthorised:
                    return self._send(401, '{"errors": [{"message": "unauthorized"}]}')
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
