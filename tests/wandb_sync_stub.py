"""The GraphQL test server (tests/wandb_stub.py) extended with what `wandb sync` of an offline run sends.

`wandb sync <run dir>` (wandb 0.31: the `wandb-core` sidecar) creates the run with `UpsertBucket`, streams history,
summary and console lines to `POST /files/<entity>/<project>/<run>/file_stream`, asks for upload URLs with
`CreateRunFiles` and PUTs each file there, and saves each artifact with `CreateArtifact`,
`CreateArtifactManifest` (+ PUT of the manifest), `CreateArtifactFiles` (+ PUT of each file) and
`CommitArtifact`. Server probes (`ServerFeaturesQuery`, `FetchArtifactDigestAlgorithm`, the Python client's
`ArtifactType`) get "no features" / "no collection yet" / "no such artifact". An online run (WANDB_MODE=online)
sends the same operations while it runs. Everything received is kept for the test to read: `buckets`, `streamed`, `uploads`,
`artifacts`. Field names and shapes follow the query texts wandb-core sends; unknown operations still get the
base server's GraphQL error naming them.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from tests.wandb_stub import StubServer


class SyncStubServer(StubServer):
    """`with SyncStubServer(entity="team") as s:` then `wandb sync` with WANDB_BASE_URL=s.url."""

    def __init__(self, entity: str = "local") -> None:
        super().__init__({}, entity=entity)
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, Any]] = {}  # run name -> the UpsertBucket variables merged
        self.streamed: dict[str, list[str]] = {}  # file_stream file name -> lines, in offset order
        self.uploads: dict[str, bytes] = {}  # upload path ("run/<run>/<file>", "artifact/<id>/<name>") -> bytes
        self.artifacts: dict[str, dict[str, Any]] = {}  # artifact id -> CreateArtifact input + "state", "files"
        self.unhandled: list[str] = []  # operations answered with "not handled by the stub"

    def __enter__(self) -> SyncStubServer:
        super().__enter__()
        return self

    # ------------------------------------------------------------------------------------------- GraphQL
    def answer(self, query: str, v: dict, base: str) -> tuple[int, dict]:
        op_match = re.search(r"\b(?:query|mutation)\s+(\w+)", query)
        op = op_match.group(1) if op_match else "?"
        with self.lock:
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                code, out = super().answer(query, v, base)
                if out.get("errors"):
                    self.unhandled.append(op)
                return code, out
            self.queries.append(op)
            return 200, {"data": handler(v, base)}

    def _op_ServerFeaturesQuery(self, v: dict, base: str) -> dict:
        return {"serverInfo": {"features": []}}

    def _op_UpsertBucket(self, v: dict, base: str) -> dict:
        name = v.get("name") or "run"
        bucket = self.buckets.setdefault(name, {})
        inserted = not bucket
        bucket.update({k: val for k, val in v.items() if val is not None})
        project = v.get("project") or "uncategorized"
        entity = v.get("entity") or self.entity
        return {
            "upsertBucket": {
                "bucket": {
                    "id": f"bucket-{name}",
                    "name": name,
                    "displayName": bucket.get("displayName"),
                    "description": bucket.get("description"),
                    "config": bucket.get("config") or "{}",
                    "sweepName": None,
                    "project": {"id": f"project-{project}", "name": project, "entity": {"id": "e1", "name": entity}},
                    "historyLineCount": 0,
                },
                "inserted": inserted,
            }
        }

    def _op_RunResumeStatus(self, v: dict, base: str) -> dict:
        return {"model": None}

    def _op_CreateRunFiles(self, v: dict, base: str) -> dict:
        run = v["run"]
        return {
            "createRunFiles": {
                "runID": f"bucket-{run}",
                "uploadHeaders": [],
                "files": [{"name": f, "uploadUrl": f"{base}/upload/run/{run}/{f}"} for f in v["files"]],
            }
        }

    def _op_FetchArtifactDigestAlgorithm(self, v: dict, base: str) -> dict:
        return {"project": {"artifactType": None}}

    def _op_ArtifactType(self, v: dict, base: str) -> dict:
        """The Python client asks whether an artifact of that name exists already (with another type): no."""
        return {"project": {"artifact": None}}

    def _op_CreateArtifact(self, v: dict, base: str) -> dict:
        aid = f"artifact-{len(self.artifacts) + 1}"
        self.artifacts[aid] = {**v["input"], "state": "PENDING", "files": {}}
        return {
            "createArtifact": {
                "artifact": {"id": aid, "state": "PENDING", "artifactSequence": {"latestArtifact": None}}
            }
        }

    def _op_CreateArtifactManifest(self, v: dict, base: str) -> dict:
        aid = v["artifactID"]
        return {
            "createArtifactManifest": {
                "artifactManifest": {
                    "id": f"manifest-{aid}",
                    "file": {"id": f"mf-{aid}", "uploadUrl": f"{base}/upload/manifest/{aid}", "uploadHeaders": []},
                }
            }
        }

    def _op_CreateArtifactFiles(self, v: dict, base: str) -> dict:
        edges: list[dict[str, Any]] = []
        for f in v["input"]["artifactFiles"]:
            aid, name = f["artifactID"], f["name"]
            self.artifacts[aid]["files"][name] = f.get("md5")
            edges.append(
                {
                    "node": {
                        "storagePath": f"{aid}/{name}",
                        "uploadUrl": f"{base}/upload/artifact/{aid}/{name}",
                        "uploadHeaders": [],
                        "uploadMultipartUrls": None,
                        "artifact": {"id": aid},
                    }
                }
            )
        return {"createArtifactFiles": {"files": {"edges": edges}}}

    def _op_CommitArtifact(self, v: dict, base: str) -> dict:
        art = self.artifacts[v["artifactID"]]
        art["state"] = "COMMITTED"
        return {"commitArtifact": {"artifact": {"id": v["artifactID"], "digest": art.get("digest")}}}

    def _op_UseArtifact(self, v: dict, base: str) -> dict:
        return {"useArtifact": {"artifact": {"id": v["input"].get("artifactID")}}}

    # ---------------------------------------------------------------------------------------------- HTTP
    def file_stream(self, body: bytes) -> None:
        data = json.loads(body or b"{}")
        with self.lock:
            for name, chunk in (data.get("files") or {}).items():
                lines = self.streamed.setdefault(name, [])
                offset = int(chunk.get("offset", len(lines)))
                if name.endswith("summary.json"):  # the summary is sent whole each time
                    lines[:] = list(chunk.get("content") or [])
                else:
                    lines[offset : offset + len(chunk.get("content") or [])] = list(chunk.get("content") or [])

    def _handler(self):
        base_handler = super()._handler()
        stub = self

        class Handler(base_handler):  # type: ignore[misc, valid-type]
            def do_PUT(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.startswith("/upload/"):
                    return self._send(404, "{}")
                with stub.lock:
                    stub.uploads[self.path[len("/upload/") :]] = raw
                self._send(200, "")

            def do_POST(self) -> None:
                if self.path.endswith("/file_stream"):
                    raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    stub.file_stream(raw)
                    return self._send(200, json.dumps({"exitcode": None, "limits": {}}))
                return super().do_POST()

        return Handler
