#include "engine/render/generators.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::render {
namespace {

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    int n = c < 0x80         ? 1
            : (c >> 5) == 6  ? 2
            : (c >> 4) == 14 ? 3
            : (c >> 3) == 30 ? 4
                             : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

std::string StripQuotes(const std::string& v) {
  if (v.size() >= 2 && (v[0] == '"' || v[0] == '\'') && v.back() == v[0]) {
    return v.substr(1, v.size() - 2);
  }
  return v;
}

std::string Basename(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::vector<std::string> Strings(const Value* v) {
  std::vector<std::string> out;
  if (v == nullptr || !v->IsList()) return out;
  for (const Value& item : v->list) out.push_back(item.ScalarText());
  return out;
}

void MergeStringMap(const Value* from, Value* into) {
  if (from == nullptr || !from->IsMap()) return;
  for (const auto& [k, v] : from->map) {
    into->At(k) = Value::Str(v.ScalarText());
  }
}

}  // namespace

std::string Base64Lines(const std::string& data) {
  std::string enc = absl::Base64Escape(data);
  constexpr size_t kLine = 70;
  size_t lines = enc.size() / kLine + 1;
  if (lines <= 1) return enc;
  std::string out;
  for (size_t i = 0; i < enc.size(); i += kLine) {
    out += enc.substr(i, kLine);
    out += '\n';
  }
  return out;
}

absl::StatusOr<Resource> Generate(const Value& entry,
                                  const Value* global_options, bool secret,
                                  const FileReader& read) {
  std::string name = entry.StringAt({"name"});
  if (name.empty()) {
    return absl::InvalidArgumentError("a generator entry has no name");
  }
  std::vector<std::pair<std::string, std::string>> data;
  for (const std::string& lit : Strings(entry.Get("literals"))) {
    size_t eq = lit.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid literal source ", lit, ", expected key=value"));
    }
    data.emplace_back(lit.substr(0, eq), StripQuotes(lit.substr(eq + 1)));
  }
  for (const std::string& file : Strings(entry.Get("files"))) {
    std::string key = Basename(file), path = file;
    size_t eq = file.find('=');
    if (eq != std::string::npos) {
      key = file.substr(0, eq);
      path = file.substr(eq + 1);
    }
    absl::StatusOr<std::string> content = read(path);
    if (!content.ok()) return content.status();
    data.emplace_back(key, *std::move(content));
  }
  std::vector<std::string> envs = Strings(entry.Get("envs"));
  std::string env = entry.StringAt({"env"});
  if (!env.empty()) envs.push_back(env);
  for (const std::string& file : envs) {
    absl::StatusOr<std::string> content = read(file);
    if (!content.ok()) return content.status();
    for (absl::string_view line : absl::StrSplit(*content, '\n')) {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      size_t start = line.find_first_not_of(" \t");
      if (start == absl::string_view::npos) continue;
      line.remove_prefix(start);
      if (line[0] == '#') continue;
      size_t eq = line.find('=');
      if (eq == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            file, ": invalid env line \"", line, "\", expected KEY=VALUE"));
      }
      data.emplace_back(std::string(line.substr(0, eq)),
                        std::string(line.substr(eq + 1)));
    }
  }

  // kustomize refuses a key given twice (literals, files and env files
  // together).
  for (size_t i = 0; i < data.size(); ++i) {
    const std::string& key = data[i].first;
    for (size_t j = 0; j < i; ++j) {
      if (data[j].first == key) {
        return absl::InvalidArgumentError(
            absl::StrCat(secret ? "secret " : "configmap ", name,
                         " illegally repeats the key `", key, "`"));
      }
    }
  }

  Resource r;
  r.generated = true;
  r.origin =
      absl::StrCat(secret ? "secretGenerator " : "configMapGenerator ", name);
  Value& obj = r.obj;
  obj = Value::EmptyMap();
  obj.map["apiVersion"] = Value::Str("v1");
  obj.map["kind"] = Value::Str(secret ? "Secret" : "ConfigMap");
  Value& meta = obj.At("metadata");
  meta = Value::EmptyMap();
  meta.map["name"] = Value::Str(name);
  std::string ns = entry.StringAt({"namespace"});
  if (!ns.empty()) meta.map["namespace"] = Value::Str(ns);
  for (const auto& [key, value] : data) {
    if (secret) {
      obj.At("data").At(key) = Value::Str(Base64Lines(value));
    } else if (ValidUtf8(value)) {
      obj.At("data").At(key) = Value::Str(value);
    } else {
      obj.At("binaryData").At(key) = Value::Str(Base64Lines(value));
    }
  }
  if (secret) {
    std::string type = entry.StringAt({"type"});
    obj.map["type"] = Value::Str(type.empty() ? "Opaque" : type);
  }
  const Value* local = entry.Get("options");
  bool disable = false;
  for (const Value* opts : {global_options, local}) {
    if (opts == nullptr || !opts->IsMap()) continue;
    Value labels = Value::EmptyMap(), annotations = Value::EmptyMap();
    MergeStringMap(opts->Get("labels"), &meta.At("labels"));
    MergeStringMap(opts->Get("annotations"), &meta.At("annotations"));
    const Value* d = opts->Get("disableNameSuffixHash");
    if (d != nullptr && d->type == Value::Type::kBool && d->boolean) {
      disable = true;
    }
    const Value* imm = opts->Get("immutable");
    if (imm != nullptr && imm->type == Value::Type::kBool && imm->boolean) {
      obj.map["immutable"] = Value::Bool(true);
    }
  }
  if (meta.Get("labels") != nullptr && meta.Get("labels")->IsNull()) {
    meta.map.erase("labels");
  }
  if (meta.Get("annotations") != nullptr && meta.Get("annotations")->IsNull()) {
    meta.map.erase("annotations");
  }
  r.needs_hash = !disable;
  r.hash_base_name = name;
  return r;
}

}  // namespace kiln::render
