# BASELINE ONLY: the minimal schema of /work/shared/research/wandb_offline.md Appendix B, for reference_reader.py.
"""Minimal, wandb-independent protobuf schema for reading .wandb files.

Field numbers copied from wandb's wandb_internal.proto (the same in an older
~0.13-era proto and in 0.31). Only the fields a dashboard needs; protobuf skips
the rest.
Needs only the `protobuf` package (no protoc, no wandb import).
"""

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,  # registers google/protobuf/timestamp.proto
)

_F = descriptor_pb2.FieldDescriptorProto
_T = {
    "string": _F.TYPE_STRING,
    "int64": _F.TYPE_INT64,
    "int32": _F.TYPE_INT32,
    "bool": _F.TYPE_BOOL,
    "double": _F.TYPE_DOUBLE,
}
# name: [(field, number, type, repeated, oneof_index)]; message types start with "."
_MESSAGES = {
    "Record": [
        ("num", 1, "int64"),
        ("history", 2, ".HistoryRecord", False, 0),
        ("summary", 3, ".SummaryRecord", False, 0),
        ("config", 5, ".ConfigRecord", False, 0),
        ("files", 6, ".FilesRecord", False, 0),
        ("run", 17, ".RunRecord", False, 0),
        ("exit", 18, ".RunExitRecord", False, 0),
        ("header", 21, ".HeaderRecord", False, 0),
    ],
    "HistoryStep": [("num", 1, "int64")],
    "HistoryItem": [
        ("key", 1, "string"),
        ("nested_key", 2, "string", True),
        ("none", 3, "int32", False, 0),
        ("boolean", 4, "bool", False, 0),
        ("integer", 5, "int64", False, 0),
        ("number", 6, "double", False, 0),
        ("text", 7, "string", False, 0),
        ("json", 8, "string", False, 0),
        ("value_json", 16, "string"),
    ],
    "HistoryRecord": [("item", 1, ".HistoryItem", True), ("step", 2, ".HistoryStep")],
    "SummaryItem": [("key", 1, "string"), ("nested_key", 2, "string", True), ("value_json", 16, "string")],
    "SummaryRecord": [("update", 1, ".SummaryItem", True), ("remove", 2, ".SummaryItem", True)],
    "ConfigItem": [("key", 1, "string"), ("nested_key", 2, "string", True), ("value_json", 16, "string")],
    "ConfigRecord": [("update", 1, ".ConfigItem", True), ("remove", 2, ".ConfigItem", True)],
    "FilesItem": [("path", 1, "string")],
    "FilesRecord": [("files", 1, ".FilesItem", True)],
    "RunRecord": [
        ("run_id", 1, "string"),
        ("entity", 2, "string"),
        ("project", 3, "string"),
        ("config", 4, ".ConfigRecord"),
        ("summary", 5, ".SummaryRecord"),
        ("run_group", 6, "string"),
        ("job_type", 7, "string"),
        ("display_name", 8, "string"),
        ("notes", 9, "string"),
        ("tags", 10, "string", True),
        ("host", 13, "string"),
        ("starting_step", 14, "int64"),
        ("start_time", 17, ".google.protobuf.Timestamp"),
    ],
    "RunExitRecord": [("exit_code", 1, "int32"), ("runtime", 2, "int32")],
    "VersionInfo": [("producer", 1, "string"), ("min_consumer", 2, "string")],
    "HeaderRecord": [("version_info", 1, ".VersionInfo")],
}
_ONEOF = {"Record": "record_type", "HistoryItem": "value"}


def _build():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="wandb_min_schema.proto", package="wbmin", syntax="proto3", dependency=["google/protobuf/timestamp.proto"]
    )
    for name, fields in _MESSAGES.items():
        m = fdp.message_type.add(name=name)
        if name in _ONEOF:
            m.oneof_decl.add(name=_ONEOF[name])
        for spec in fields:
            fname, num, typ = spec[:3]
            rep = len(spec) > 3 and spec[3]
            f = m.field.add(name=fname, number=num, label=_F.LABEL_REPEATED if rep else _F.LABEL_OPTIONAL)
            if typ.startswith("."):
                f.type = _F.TYPE_MESSAGE
                f.type_name = typ if typ.startswith(".google") else ".wbmin" + typ
            else:
                f.type = _T[typ]
            if len(spec) > 4:
                f.oneof_index = spec[4]
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    fd = pool.Add(fdp)
    return {n: message_factory.GetMessageClass(fd.message_types_by_name[n]) for n in _MESSAGES}


_CLASSES = _build()
Record = _CLASSES["Record"]
