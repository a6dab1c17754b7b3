#include "engine/render/json_patch.h"

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace kiln::render {
namespace {

absl::StatusOr<std::vector<std::string>> SplitPointer(const std::string& p) {
  if (p.empty()) return std::vector<std::string>{};
  if (p[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON pointer \"", p, "\" does not start with /"));
  }
  std::vector<std::string> parts = absl::StrSplit(p.substr(1), '/');
  for (std::string& s : parts) {
    s = absl::StrReplaceAll(s, {{"~1", "/"}, {"~0", "~"}});
  }
  return parts;
}

absl::StatusOr<size_t> Index(const Value& list, const std::string& token,
                             bool allow_end) {
  if (token == "-" && allow_end) return list.list.size();
  size_t i;
  if (token.empty() || (token.size() > 1 && token[0] == '0') ||
      !absl::SimpleAtoi(token, &i)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid list index \"", token, "\""));
  }
  if (i > list.list.size() || (!allow_end && i == list.list.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("list index ", i, " out of range"));
  }
  return i;
}

// The container holding the last token.
absl::StatusOr<Value*> Parent(Value* doc, const std::vector<std::string>& path,
                              const std::string& text) {
  Value* v = doc;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (v->IsMap()) {
      v = v->GetMutable(path[i]);
    } else if (v->IsList()) {
      absl::StatusOr<size_t> idx = Index(*v, path[i], false);
      if (!idx.ok()) return idx.status();
      v = &v->list[*idx];
    } else {
      v = nullptr;
    }
    if (v == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", text, "\" does not exist"));
    }
  }
  return v;
}

absl::StatusOr<Value> Get(Value* doc, const std::string& text) {
  absl::StatusOr<std::vector<std::string>> path = SplitPointer(text);
  if (!path.ok()) return path.status();
  if (path->empty()) return *doc;
  absl::StatusOr<Value*> parent = Parent(doc, *path, text);
  if (!parent.ok()) return parent.status();
  const std::string& last = path->back();
  if ((*parent)->IsMap()) {
    const Value* v = (*parent)->Get(last);
    if (v != nullptr) return *v;
  } else if ((*parent)->IsList()) {
    absl::StatusOr<size_t> idx = Index(**parent, last, false);
    if (idx.ok()) return (*parent)->list[*idx];
  }
  return absl::InvalidArgumentError(
      absl::StrCat("path \"", text, "\" does not exist"));
}

absl::Status Remove(Value* doc, const std::string& text) {
  absl::StatusOr<std::vector<std::string>> path = SplitPointer(text);
  if (!path.ok()) return path.status();
  if (path->empty()) return absl::InvalidArgumentError("cannot remove root");
  absl::StatusOr<Value*> parent = Parent(doc, *path, text);
  if (!parent.ok()) return parent.status();
  const std::string& last = path->back();
  if ((*parent)->IsMap() && (*parent)->map.erase(last) == 1) {
    return absl::OkStatus();
  }
  if ((*parent)->IsList()) {
    absl::StatusOr<size_t> idx = Index(**parent, last, false);
    if (!idx.ok()) return idx.status();
    (*parent)->list.erase((*parent)->list.begin() + *idx);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "Unable to remove nonexistent key: ", last, ": missing value"));
}

absl::Status Add(Value* doc, const std::string& text, Value value,
                 bool replace) {
  absl::StatusOr<std::vector<std::string>> path = SplitPointer(text);
  if (!path.ok()) return path.status();
  if (path->empty()) {
    *doc = std::move(value);
    return absl::OkStatus();
  }
  absl::StatusOr<Value*> parent = Parent(doc, *path, text);
  if (!parent.ok()) return parent.status();
  const std::string& last = path->back();
  Value* p = *parent;
  if (p->IsMap()) {
    if (replace && p->Get(last) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "replace operation does not apply: doc is missing key: ", text));
    }
    p->map[last] = std::move(value);
    return absl::OkStatus();
  }
  if (p->IsList()) {
    absl::StatusOr<size_t> idx = Index(*p, last, !replace);
    if (!idx.ok()) return idx.status();
    if (replace) {
      p->list[*idx] = std::move(value);
    } else {
      p->list.insert(p->list.begin() + *idx, std::move(value));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("add operation does not apply: doc is missing path: \"",
                   text, "\": missing value"));
}

}  // namespace

absl::Status ApplyJsonPatch(const Value& ops, Value* doc) {
  if (!ops.IsList()) {
    return absl::InvalidArgumentError("a JSON patch must be a list of ops");
  }
  for (const Value& op : ops.list) {
    std::string kind = op.StringAt({"op"});
    std::string path = op.StringAt({"path"});
    const Value* value = op.Get("value");
    std::string from = op.StringAt({"from"});
    absl::Status s;
    if (kind == "add" || kind == "replace") {
      if (value == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(kind, " operation has no value"));
      }
      s = Add(doc, path, *value, kind == "replace");
    } else if (kind == "remove") {
      s = Remove(doc, path);
    } else if (kind == "move" || kind == "copy") {
      absl::StatusOr<Value> v = Get(doc, from);
      if (!v.ok()) return v.status();
      if (kind == "move") s = Remove(doc, from);
      if (s.ok()) s = Add(doc, path, *std::move(v), false);
    } else if (kind == "test") {
      absl::StatusOr<Value> v = Get(doc, path);
      if (!v.ok()) return v.status();
      if (value == nullptr || *v != *value) {
        return absl::InvalidArgumentError(
            absl::StrCat("testing value ", path, " failed: test failed"));
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected JSON patch op \"", kind, "\""));
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace kiln::render
