"""A wandb-free protobuf schema for the records of a `.wandb` transaction log.

Only the fields the analyzer reads are declared; protobuf skips the rest. Field numbers are the on-disk format
(the same in wandb's `wandb_internal.proto` from ~0.13 to 0.31), so this needs only the `protobuf` package and
avoids importing wandb (0.5 s, and it wraps sys.stdout).

`Record.history` and `Record.summary` are declared as `bytes` (same wire type as a message): the reader decodes
their payloads itself on the fast path and falls back to `HistoryRecord` / `SummaryRecord` for unusual items.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

_FD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _FD.TYPE_STRING,
    "bytes": _FD.TYPE_BYTES,
    "int64": _FD.TYPE_INT64,
    "int32": _FD.TYPE_INT32,
    "bool": _FD.TYPE_BOOL,
    "double": _FD.TYPE_DOUBLE,
}
_PACKAGE = "analyzer_wandb_min"

# message -> list of (field name, number, type, repeated?, oneof name or None)
_SCHEMA: dict[str, list[tuple[str, int, str, bool, str | None]]] = {
    "Record": [
        ("num", 1, "int64", False, None),
        ("history", 2, "bytes", False, "record_type"),
        ("summary", 3, "bytes", False, "record_type"),
        ("config", 5, "ConfigRecord", False, "record_type"),
        ("files", 6, "FilesRecord", False, "record_type"),
        ("run", 17, "RunRecord", False, "record_type"),
        ("exit", 18, "RunExitRecord", False, "record_type"),
        ("header", 21, "HeaderRecord", False, "record_type"),
    ],
    "HistoryStep": [("num", 1, "int64", False, None)],
    "HistoryItem": [
        ("key", 1, "string", False, None),
        ("nested_key", 2, "string", True, None),
        ("none", 3, "int32", False, "value"),
        ("boolean", 4, "bool", False, "value"),
        ("integer", 5, "int64", False, "value"),
        ("number", 6, "double", False, "value"),
        ("text", 7, "string", False, "value"),
        ("json", 8, "string", False, "value"),
        ("value_json", 16, "string", False, None),
    ],
    "HistoryRecord": [("item", 1, "HistoryItem", True, None), ("step", 2, "HistoryStep", False, None)],
    "Item": [
        ("key", 1, "string", False, None),
        ("nested_key", 2, "string", True, None),
        ("value_json", 16, "string", False, None),
    ],
    "SummaryRecord": [("update", 1, "Item", True, None), ("remove", 2, "Item", True, None)],
    "ConfigRecord": [("update", 1, "Item", True, None), ("remove", 2, "Item", True, None)],
    "FilesItem": [("path", 1, "string", False, None)],
    "FilesRecord": [("files", 1, "FilesItem", True, None)],
    "RunRecord": [
        ("run_id", 1, "string", False, None),
        ("entity", 2, "string", False, None),
        ("project", 3, "string", False, None),
        ("config", 4, "ConfigRecord", False, None),
        ("summary", 5, "SummaryRecord", False, None),
        ("run_group", 6, "string", False, None),
        ("job_type", 7, "string", False, None),
        ("display_name", 8, "string", False, None),
        ("notes", 9, "string", False, None),
        ("tags", 10, "string", True, None),
        ("host", 13, "string", False, None),
        ("starting_step", 14, "int64", False, None),
        ("start_time", 17, ".google.protobuf.Timestamp", False, None),
    ],
    "RunExitRecord": [("exit_code", 1, "int32", False, None), ("runtime", 2, "int32", False, None)],
    "VersionInfo": [("producer", 1, "string", False, None), ("min_consumer", 2, "string", False, None)],
    "HeaderRecord": [("version_info", 1, "VersionInfo", False, None)],
}


def _build() -> dict[str, Any]:
    """Message classes by name. They are built at run time, so their fields are unknown to a type checker: typed
    `Any` rather than `type[Message]`, whose instances would have no `history`, `run`, ... attributes."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="analyzer_wandb_min.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    for msg_name, fields in _SCHEMA.items():
        msg = fdp.message_type.add(name=msg_name)
        oneofs: list[str] = []
        for fname, number, ftype, repeated, oneof in fields:
            f = msg.field.add(name=fname, number=number, label=_FD.LABEL_REPEATED if repeated else _FD.LABEL_OPTIONAL)
            if ftype in _SCALARS:
                f.type = _SCALARS[ftype]
            else:
                f.type = _FD.TYPE_MESSAGE
                f.type_name = ftype if ftype.startswith(".") else f".{_PACKAGE}.{ftype}"
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    msg.oneof_decl.add(name=oneof)
                f.oneof_index = oneofs.index(oneof)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    file_desc = pool.Add(fdp)
    return {name: message_factory.GetMessageClass(file_desc.message_types_by_name[name]) for name in _SCHEMA}


_CLASSES = _build()
Record = _CLASSES["Record"]
HistoryRecord = _CLASSES["HistoryRecord"]
SummaryRecord = _CLASSES["SummaryRecord"]
ConfigRecord = _CLASSES["ConfigRecord"]
RunRecord = _CLASSES["RunRecord"]
