#include "engine/render/convert.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/render/scalar.h"
#include "engine/yaml/parse.h"

namespace kiln::render {
namespace {

absl::Status ErrorAt(absl::string_view filename, const yaml::Node& node,
                     absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(
      filename, ":", node.mark().line, ":", node.mark().column, ": ", message));
}

bool HasStrTag(const yaml::Node& node) {
  return node.tag() == "tag:yaml.org,2002:str" || node.tag() == "!!str";
}

absl::StatusOr<std::string> KeyText(const yaml::Node& key,
                                    absl::string_view filename) {
  if (!key.IsScalar() && !key.IsNull()) {
    return ErrorAt(filename, key, "mapping key is not a string");
  }
  if (key.quoted() || HasStrTag(key)) return key.value();
  absl::StatusOr<Value> v = ResolvePlainScalar(key.value());
  if (!v.ok() || !v->IsString()) {
    return ErrorAt(filename, key,
                   absl::StrCat("mapping key \"", key.value(),
                                "\" is not a string (json: unsupported type)"));
  }
  return v->text;
}

absl::Status MergeInto(const yaml::Node& source, absl::string_view filename,
                       Value* target);

absl::StatusOr<Value> Convert(const yaml::Node& node,
                              absl::string_view filename) {
  switch (node.kind()) {
    case yaml::Node::Kind::kNull:
      // kustomize reads an empty flow value (`{a: }`) as "", a block one
      // (`a:`) as null.
      if (node.empty_in_flow()) return Value::Str("");
      return Value::Null();
    case yaml::Node::Kind::kScalar: {
      if (node.quoted() || HasStrTag(node)) return Value::Str(node.value());
      absl::StatusOr<Value> v = ResolvePlainScalar(node.value());
      if (!v.ok()) return ErrorAt(filename, node, v.status().message());
      return v;
    }
    case yaml::Node::Kind::kSequence: {
      Value out = Value::EmptyList();
      out.list.reserve(node.items().size());
      for (const yaml::Node& item : node.items()) {
        absl::StatusOr<Value> v = Convert(item, filename);
        if (!v.ok()) return v.status();
        out.list.push_back(*std::move(v));
      }
      return out;
    }
    case yaml::Node::Kind::kMapping: {
      Value out = Value::EmptyMap();
      const yaml::Node* merge = nullptr;
      for (const auto& [key, value] : node.entries()) {
        if (key.IsScalar() && key.value() == "<<") {
          // kustomize v5.5.0 drops an entry whose key is a quoted "<<"
          // (whatever its value); a plain one is a merge key.
          if (key.quoted()) continue;
          merge = &value;
          continue;
        }
        absl::StatusOr<std::string> k = KeyText(key, filename);
        if (!k.ok()) return k.status();
        absl::StatusOr<Value> v = Convert(value, filename);
        if (!v.ok()) return v.status();
        out.map[*k] = *std::move(v);
      }
      if (merge != nullptr) {
        if (merge->IsSequence()) {
          for (const yaml::Node& m : merge->items()) {
            absl::Status s = MergeInto(m, filename, &out);
            if (!s.ok()) return s;
          }
        } else {
          absl::Status s = MergeInto(*merge, filename, &out);
          if (!s.ok()) return s;
        }
      }
      return out;
    }
  }
  return Value::Null();
}

absl::Status MergeInto(const yaml::Node& source, absl::string_view filename,
                       Value* target) {
  if (!source.IsMapping()) {
    return ErrorAt(filename, source,
                   "map merge requires map or sequence of maps as the value");
  }
  absl::StatusOr<Value> v = Convert(source, filename);
  if (!v.ok()) return v.status();
  for (auto& [k, val] : v->map) target->map.emplace(k, std::move(val));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Value> FromYaml(const yaml::Node& node,
                               absl::string_view filename) {
  return Convert(node, filename);
}

absl::StatusOr<std::vector<Value>> ParseYamlStream(absl::string_view text,
                                                   absl::string_view filename) {
  absl::StatusOr<std::vector<yaml::Node>> docs = yaml::ParseAll(text, filename);
  if (!docs.ok()) return docs.status();
  std::vector<Value> out;
  out.reserve(docs->size());
  for (const yaml::Node& doc : *docs) {
    absl::StatusOr<Value> v = Convert(doc, filename);
    if (!v.ok()) return v.status();
    if (v->IsNull()) continue;
    out.push_back(*std::move(v));
  }
  return out;
}

}  // namespace kiln::render
