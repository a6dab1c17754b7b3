#!/usr/bin/env python3
"""Generates docs/pipeline.md from the comments of proto/kiln/v1/pipeline.proto.

The .proto is read through protoc (--include_source_info), not by regular
expressions: every message and enum reachable from kiln.v1.Pipeline, in the
order the file declares them, with each field's YAML name, type and the
comments above and beside it. The YAML shorthands the loader accepts
(engine/pipeline/loader.h) are listed once at the top.

  gen_pipeline_doc.py PROTO_ROOT OUT.md          writes the page
  gen_pipeline_doc.py PROTO_ROOT --check DOC.md  fails if DOC.md is not current
"""

import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

PROTO = "kiln/v1/pipeline.proto"
ROOT_MESSAGE = "Pipeline"

HEADER = """# The pipeline format

Generated from the comments of `proto/kiln/v1/pipeline.proto` by
`docs/gen_pipeline_doc.py`; `//docs:pipeline_doc_test` fails when this page
is not current (regenerate: `python3 docs/gen_pipeline_doc.py proto
docs/pipeline.md`).

A pipeline file is YAML whose fields mirror these messages (snake_case
names, as below). Shorthands the loader accepts (engine/pipeline/loader.h):

- a task's `retries`, `timeout`, `resources`, `pod` go to `hints`;
- `resources: {memory: 512Mi}` is `memory_bytes`; `pod: {affinity: {...}}`
  (a mapping) is stored as `affinity_json`;
- `render: {kustomization: DIR}` is `{artifact: source, path: DIR}`;
- `env: {NAME: value}` and `labels: {k: v}` for the repeated EnvVar / Label;
- `inputs: [source]` for `[{artifact: source}]`;
- durations are `"90s"`, `"10m"`, `"1h30m"`, `"500ms"` (or `"0"`); sizes are
  bytes or `"512Mi"` / `"2G"`;
- enum values are written as their names (`on_failure: continue` or
  `CONTINUE`).

Editors validate and complete pipeline files with the JSON Schema
`docs/pipeline.schema.json` (generated from the same protos by
`docs/gen_pipeline_schema.py`; start a file with
`# yaml-language-server: $schema=PATH/TO/docs/pipeline.schema.json`).

Every error in a file is reported as `FILE:LINE:COL: message`. Examples:
`examples/hello/pipeline.yaml`, and the inline pipelines of
`engine/pipeline/loader_test.cc` (every form).
"""

TYPE_NAMES = {
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
}


def load_files(proto_root):
    """pipeline.proto, then the kiln.v1 files it imports (pod.proto)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run(["protoc", "-I", proto_root, "--include_source_info",
                        "--include_imports", "--descriptor_set_out=" + out,
                        PROTO], check=True)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    files = [f for f in fds.file if f.package == "kiln.v1"]
    if not any(f.name == PROTO for f in files):
        sys.exit("protoc returned no " + PROTO)
    return sorted(files, key=lambda f: f.name != PROTO)


def comments(file, path):
    """The leading and trailing comments at `path`, as one paragraph."""
    for loc in file.source_code_info.location:
        if list(loc.path) == path:
            parts = [loc.leading_comments, loc.trailing_comments]
            text = " ".join(" ".join(p.split()) for p in parts if p.strip())
            return text
    return ""


def short(type_name):
    return type_name.rsplit(".", 1)[-1]


def field_type(field):
    t = descriptor_pb2.FieldDescriptorProto
    if field.type in (t.TYPE_MESSAGE, t.TYPE_ENUM):
        name = short(field.type_name)
        if field.type_name == ".google.protobuf.Duration":
            base = "duration"
        elif field.type_name.startswith(".kiln."):
            base = "[%s](#%s)" % (name, name.lower())
        else:
            base = name
    else:
        base = TYPE_NAMES.get(field.type, "?")
    if field.label == t.LABEL_REPEATED:
        return "list of " + base
    return base


def reachable(files):
    """Messages and enums reachable from the root."""
    messages = {m.name: m for f in files for m in f.message_type}
    enums = {e.name for f in files for e in f.enum_type}
    seen, todo = set(), [ROOT_MESSAGE]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in messages:
            for field in messages[name].field:
                if field.type_name.startswith(".kiln.v1."):
                    todo.append(short(field.type_name))
    return seen & (set(messages) | enums)


def render(files):
    out = [HEADER]
    wanted = reachable(files)
    for file, i, message in [(f, i, m) for f in files
                             for i, m in enumerate(f.message_type)]:
        if message.name not in wanted:
            continue
        out.append("\n## %s\n" % message.name)
        doc = comments(file, [4, i])
        if doc:
            out.append("\n%s\n" % doc)
        oneofs = {}
        for field in message.field:
            if field.HasField("oneof_index") and not field.proto3_optional:
                oneofs.setdefault(field.oneof_index, []).append(field.name)
        for index, names in sorted(oneofs.items()):
            out.append("\nAt most one of: %s (`%s`).\n" % (
                ", ".join("`%s`" % n for n in names),
                message.oneof_decl[index].name))
        out.append("\n| field | type | meaning |\n| --- | --- | --- |\n")
        for j, field in enumerate(message.field):
            doc = comments(file, [4, i, 2, j]).replace("|", "\\|")
            out.append("| `%s` | %s | %s |\n" % (field.name, field_type(field),
                                              doc))
    for file, i, enum in [(f, i, e) for f in files
                          for i, e in enumerate(f.enum_type)]:
        if enum.name not in wanted:
            continue
        out.append("\n## %s\n" % enum.name)
        doc = comments(file, [5, i])
        if doc:
            out.append("\n%s\n" % doc)
        out.append("\n| value | meaning |\n| --- | --- |\n")
        for j, value in enumerate(enum.value):
            doc = comments(file, [5, i, 2, j]).replace("|", "\\|")
            out.append("| `%s` | %s |\n" % (value.name, doc))
    return "".join(out)


def main(argv):
    if len(argv) == 3:
        text = render(load_files(argv[1]))
        with open(argv[2], "w") as f:
            f.write(text)
        return 0
    if len(argv) == 4 and argv[2] == "--check":
        text = render(load_files(argv[1]))
        with open(argv[3]) as f:
            current = f.read()
        if current != text:
            sys.stderr.write(
                "docs/pipeline.md is not current with pipeline.proto; run: "
                "python3 docs/gen_pipeline_doc.py proto docs/pipeline.md\n")
            return 1
        print("docs/pipeline.md is current")
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
