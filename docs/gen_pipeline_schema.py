#!/usr/bin/env python3
"""Generates docs/pipeline.schema.json, the JSON Schema of pipeline files.

The schema comes from the same source as docs/pipeline.md: the messages of
proto/kiln/v1/pipeline.proto (and pod.proto), read through protoc, with each
field's comment as its description. A new proto field therefore appears in
the schema by itself. The YAML the loader reads differs from the proto in a
few places (engine/pipeline/loader.h lists the shorthands); those are the
SURFACE table below, and nothing else is written by hand.

//docs:pipeline_schema_test keeps both honest: the schema must be current,
every pipeline file in the repository must validate (ajv), and for every
object and enum the schema describes, the keys and values it allows must be
exactly the ones the loader allows (probed through `kiln validate`).

  gen_pipeline_schema.py PROTO_ROOT OUT.json          writes the schema
  gen_pipeline_schema.py PROTO_ROOT --check OUT.json  fails if not current
"""

import json
import os
import sys

from google.protobuf import descriptor_pb2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_pipeline_doc  # noqa: E402  (load_files, comments)

F = descriptor_pb2.FieldDescriptorProto
SCHEMA_ID = "https://kiln.dev/schemas/pipeline.schema.json"

# Any YAML scalar is accepted where the proto has a string (the loader reads
# `name: 5` as "5"); null is not.
SCALAR = {"type": ["string", "number", "boolean"]}
DURATION = {
    "description": 'A duration: "90s", "10m", "1h30m", "500ms" or 0.',
    "anyOf": [
        {"type": "string",
         "pattern": r"^(0|([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+)$"},
        {"const": 0},
    ],
}
SIZE = {
    "description": 'A size: bytes, or "512Mi", "2G", "64k".',
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string",
         "pattern": r"^[0-9]+(\.[0-9]+)?([kKMGTP]i?|[kKMGTP]B?)?$"},
    ],
}
STRING_MAP = {"type": "object", "additionalProperties": SCALAR}

# How the YAML differs from the proto, per message. Keys:
#   drop     proto fields the YAML does not have
#   rename   proto field -> YAML key
#   flatten  a message field whose own fields appear at this level
#   types    YAML key -> schema, replacing the one derived from the proto
#   exactly_one_of  oneof name whose fields are mutually exclusive AND required
SURFACE = {
    "Pipeline": {"drop": ["file"]},
    "Param": {"types": {"default": SCALAR,
                        "choices": {"type": "array", "items": SCALAR}}},
    "Task": {
        "flatten": ["hints"],
        "types": {"retries": {"type": "integer", "minimum": 0,
                              "maximum": 100},
                  "inputs": {"type": "array", "items": {"anyOf": [
                      SCALAR, {"$ref": "#/definitions/ArtifactInput"}]}}},
        "exactly_one_of": "kind",
    },
    "Resources": {
        "rename": {"memory_bytes": "memory"},
        "types": {"memory": SIZE, "max_log_bytes": SIZE},
    },
    "RenderSpec": {"types": {"kustomization": {"anyOf": [
        SCALAR, {"$ref": "#/definitions/ArtifactPath"}]}}},
    "Notification": {"types": {
        "on": {"anyOf": [
            {"$ref": "#/definitions/Notification.Outcome"},
            {"type": "array",
             "items": {"$ref": "#/definitions/Notification.Outcome"}}]},
        "retries": {"type": "integer", "minimum": 0, "maximum": 10}}},
    "PodShape": {
        "rename": {"affinity_json": "affinity"},
        "types": {"affinity": {"type": "object"}},
    },
}

# Messages the loader reads in a form of its own (engine/pipeline/
# decode_condition.cc), written out here.
CUSTOM = {
    "Condition": {
        "description": (
            "`when:` — conditions over the trigger. One key is that "
            "condition; several keys must all hold; `{}` is always true."),
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "branch": {"$ref": "#/definitions/StringMatch"},
            "message": {"$ref": "#/definitions/StringMatch"},
            "changelog": {"$ref": "#/definitions/StringMatch"},
            "event": {"$ref": "#/definitions/EventSet"},
            "param": {"$ref": "#/definitions/ParamMatch"},
            "result": {"$ref": "#/definitions/ResultMatch"},
            "all": {"type": "array",
                    "items": {"$ref": "#/definitions/Condition"}},
            "any": {"type": "array",
                    "items": {"$ref": "#/definitions/Condition"}},
            "not": {"$ref": "#/definitions/Condition"},
        },
    },
    "StringMatch": {
        "description": ("A pattern (glob for branches, regex for messages), "
                        "or exactly one of glob, regex, exact, not."),
        "anyOf": [
            SCALAR,
            {"type": "object", "additionalProperties": False,
             "minProperties": 1, "maxProperties": 1,
             "properties": {"glob": SCALAR, "regex": SCALAR, "exact": SCALAR,
                            "not": {"$ref": "#/definitions/StringMatch"}}},
        ],
    },
    "EventSet": {
        "description": "One event or a list of them.",
        "anyOf": [{"$ref": "#/definitions/EventKind"},
                  {"type": "array",
                   "items": {"$ref": "#/definitions/EventKind"}}],
    },
    "ParamMatch": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": SCALAR, "equals": SCALAR,
                       "not_equals": SCALAR, "matches": SCALAR},
        "oneOf": [{"required": ["equals"]}, {"required": ["not_equals"]},
                  {"required": ["matches"]}],
    },
    "ResultMatch": {
        "description": ("A result of a task this one needs "
                        "(docs/task-results.md)."),
        "type": "object",
        "additionalProperties": False,
        "required": ["task", "name"],
        "properties": {"task": SCALAR, "name": SCALAR, "equals": SCALAR,
                       "not_equals": SCALAR, "matches": SCALAR},
        "oneOf": [{"required": ["equals"]}, {"required": ["not_equals"]},
                  {"required": ["matches"]}],
    },
}


def case_insensitive(name):
    """A pattern matching `name` in any letter case."""
    out = []
    for c in name:
        if c.isalpha():
            out.append("[%s%s]" % (c.lower(), c.upper()))
        else:
            out.append("\\" + c if c in ".^$*+?()[]{}|\\" else c)
    return "".join(out)


class Generator:
    def __init__(self, files):
        self.messages, self.enums, self.docs = {}, {}, {}
        for f in files:
            for i, m in enumerate(f.message_type):
                self.messages[m.name] = m
                self.docs[m.name] = (f, [4, i])
                for k, e in enumerate(m.enum_type):
                    self.enums[m.name + "." + e.name] = e
            for i, e in enumerate(f.enum_type):
                self.enums[e.name] = e
                self.docs[e.name] = (f, [5, i])
        self.definitions = {}

    def doc(self, name, sub=()):
        if name not in self.docs:
            return ""
        f, path = self.docs[name]
        return gen_pipeline_doc.comments(f, path + list(sub))

    def type_name(self, field):
        return field.type_name.split(".kiln.v1.", 1)[-1]

    def field_schema(self, message, index, field):
        t = field.type
        if t == F.TYPE_MESSAGE and field.type_name.endswith("Entry"):
            schema = dict(STRING_MAP)  # a proto map<string, string>
        elif field.type_name == ".google.protobuf.Duration":
            schema = dict(DURATION)
        elif field.type_name == ".kiln.v1.EnvVar":
            schema = {"anyOf": [STRING_MAP, {
                "type": "array",
                "items": {"$ref": "#/definitions/EnvVar"}}]}
            self.need("EnvVar")
            return schema
        elif field.type_name == ".kiln.v1.Label":
            return dict(STRING_MAP)
        elif t == F.TYPE_MESSAGE:
            name = self.type_name(field)
            self.need(name)
            schema = {"$ref": "#/definitions/" + name}
        elif t == F.TYPE_ENUM:
            name = self.type_name(field)
            self.need_enum(name)
            schema = {"$ref": "#/definitions/" + name}
        elif t == F.TYPE_BOOL:
            schema = {"type": "boolean"}
        elif t in (F.TYPE_UINT32, F.TYPE_UINT64):
            schema = {"type": "integer", "minimum": 0}
        elif t in (F.TYPE_INT32, F.TYPE_INT64):
            schema = {"type": "integer"}
        else:
            schema = dict(SCALAR)
        if field.label == F.LABEL_REPEATED and "Entry" not in field.type_name:
            schema = {"type": "array", "items": schema}
        return schema

    def need_enum(self, name):
        if name in self.definitions:
            return
        enum = self.enums[name]
        values = [v.name for v in enum.value
                  if not v.name.endswith("UNSPECIFIED")]
        self.definitions[name] = {
            "description": ("One of: %s (in any letter case). %s" % (
                ", ".join(v.lower() for v in values),
                self.doc(name))).strip(),
            "type": "string",
            "pattern": "^(%s)$" % "|".join(case_insensitive(v)
                                           for v in values),
        }

    def need(self, name):
        if name in self.definitions:
            return
        if name in CUSTOM:
            self.definitions[name] = CUSTOM[name]
            if name == "Condition":
                for ref in ("StringMatch", "EventSet", "ParamMatch",
                            "ResultMatch"):
                    self.need(ref)
            if name == "EventSet":
                self.need_enum("EventKind")
            return
        self.definitions[name] = {}  # placeholder against recursion
        message = self.messages[name]
        surface = SURFACE.get(name, {})
        properties, kinds = {}, []
        for index, field in enumerate(message.field):
            if field.name in surface.get("drop", []):
                continue
            if field.name in surface.get("flatten", []):
                inner = self.messages[self.type_name(field)]
                inner_surface = SURFACE.get(inner.name, {})
                for j, sub in enumerate(inner.field):
                    key = inner_surface.get("rename", {}).get(sub.name,
                                                              sub.name)
                    properties[key] = self.describe(
                        self.field_schema(inner, j, sub),
                        self.doc(inner.name, [2, j]))
                continue
            key = surface.get("rename", {}).get(field.name, field.name)
            schema = self.field_schema(message, index, field)
            properties[key] = self.describe(schema,
                                            self.doc(name, [2, index]))
            if (field.HasField("oneof_index") and not field.proto3_optional
                    and message.oneof_decl[field.oneof_index].name ==
                    surface.get("exactly_one_of")):
                kinds.append(key)
        for key, schema in surface.get("types", {}).items():
            description = properties.get(key, {}).get("description")
            properties[key] = self.describe(dict(schema), description)
        definition = {"type": "object", "additionalProperties": False,
                      "properties": properties}
        if self.doc(name):
            definition["description"] = self.doc(name)
        if kinds:
            definition["oneOf"] = [{"required": [k]} for k in kinds]
        self.definitions[name] = definition

    @staticmethod
    def describe(schema, description):
        if not description:
            return schema
        if "$ref" in schema:  # draft-07 ignores a $ref's siblings
            schema = {"allOf": [schema]}
        schema = dict(schema)
        schema["description"] = description
        return schema

    def schema(self):
        self.need("Pipeline")
        root = dict(self.definitions["Pipeline"])
        root.pop("description", None)
        return {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": SCHEMA_ID,
            "title": "kiln pipeline",
            "description": (
                "A kiln pipeline file (docs/pipeline.md). Generated from "
                "proto/kiln/v1/pipeline.proto by docs/gen_pipeline_schema.py;"
                " editors: `# yaml-language-server: $schema=` this file."),
            "$ref": "#/definitions/Pipeline",
            "definitions": dict(sorted(self.definitions.items())),
        }


def render(proto_root):
    return json.dumps(Generator(gen_pipeline_doc.load_files(proto_root)).schema(), indent=2,
                      sort_keys=False) + "\n"


def main(argv):
    if len(argv) == 3:
        with open(argv[2], "w") as f:
            f.write(render(argv[1]))
        return 0
    if len(argv) == 4 and argv[2] == "--check":
        with open(argv[3]) as f:
            current = f.read()
        if current != render(argv[1]):
            sys.stderr.write(
                "docs/pipeline.schema.json is not current with the protos; "
                "run: python3 docs/gen_pipeline_schema.py proto "
                "docs/pipeline.schema.json\n")
            return 1
        print("docs/pipeline.schema.json is current")
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
