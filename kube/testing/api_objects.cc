#include "kube/testing/api_objects.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;

bool IsKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-' || c == '/';
}

bool IsValueChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-';
}

// Splits on commas outside parentheses.
absl::StatusOr<std::vector<std::string>> SplitTopLevel(absl::string_view s) {
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unbalanced ')' in selector \"", s, "\""));
    }
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  if (depth != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unbalanced '(' in selector \"", s, "\""));
  }
  out.push_back(cur);
  return out;
}

absl::Status CheckValue(absl::string_view v, absl::string_view text) {
  if (v.size() > 63 || !std::all_of(v.begin(), v.end(), IsValueChar)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid label value \"", v, "\" in selector \"", text, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  LabelSelector sel;
  if (absl::StripAsciiWhitespace(text).empty()) return sel;
  absl::StatusOr<std::vector<std::string>> parts = SplitTopLevel(text);
  if (!parts.ok()) return parts.status();
  for (const std::string& raw : *parts) {
    absl::string_view p = absl::StripAsciiWhitespace(raw);
    if (p.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty requirement in selector \"", text, "\""));
    }
    Requirement r;
    bool negated = absl::ConsumePrefix(&p, "!");
    p = absl::StripLeadingAsciiWhitespace(p);
    size_t k = 0;
    while (k < p.size() && IsKeyChar(p[k])) ++k;
    r.key = std::string(p.substr(0, k));
    if (r.key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid label key in selector \"", text, "\" near \"", p, "\""));
    }
    absl::string_view rest = absl::StripAsciiWhitespace(p.substr(k));
    if (negated) {
      if (!rest.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unexpected \"", rest, "\" after !", r.key, " in \"", text, "\""));
      }
      r.op = Op::kNotExists;
    } else if (rest.empty()) {
      r.op = Op::kExists;
    } else if (absl::ConsumePrefix(&rest, "!=")) {
      r.op = Op::kNotEq;
    } else if (absl::ConsumePrefix(&rest, "==") ||
               absl::ConsumePrefix(&rest, "=")) {
      r.op = Op::kEq;
    } else if (absl::ConsumePrefix(&rest, "notin")) {
      r.op = Op::kNotIn;
    } else if (absl::ConsumePrefix(&rest, "in")) {
      r.op = Op::kIn;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unsupported operator in selector \"", text, "\" near \"", rest,
          "\" (the double supports =, ==, !=, in, notin, exists, !)"));
    }
    rest = absl::StripAsciiWhitespace(rest);
    if (r.op == Op::kEq || r.op == Op::kNotEq) {
      if (absl::Status s = CheckValue(rest, text); !s.ok()) return s;
      r.values.push_back(std::string(rest));
    } else if (r.op == Op::kIn || r.op == Op::kNotIn) {
      if (!absl::ConsumePrefix(&rest, "(") ||
          !absl::ConsumeSuffix(&rest, ")")) {
        return absl::InvalidArgumentError(absl::StrCat(
            "expected a (value, ...) list in selector \"", text, "\""));
      }
      for (absl::string_view v : absl::StrSplit(rest, ',')) {
        v = absl::StripAsciiWhitespace(v);
        if (absl::Status s = CheckValue(v, text); !s.ok()) return s;
        r.values.push_back(std::string(v));
      }
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool LabelSelector::Matches(const json& labels) const {
  for (const Requirement& r : reqs_) {
    bool has = labels.is_object() && labels.contains(r.key) &&
               labels[r.key].is_string();
    std::string v = has ? labels[r.key].get<std::string>() : "";
    bool in =
        has && std::find(r.values.begin(), r.values.end(), v) != r.values.end();
    switch (r.op) {
      case Op::kEq:
      case Op::kIn:
        if (!in) return false;
        break;
      case Op::kNotEq:
      case Op::kNotIn:
        if (in) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

std::string FieldValue(const json& object, absl::string_view field) {
  const json* cur = &object;
  for (absl::string_view part : absl::StrSplit(field, '.')) {
    if (!cur->is_object()) return "";
    auto it = cur->find(std::string(part));
    if (it == cur->end()) return "";
    cur = &*it;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null()) return "";
  return cur->dump();
}

absl::StatusOr<FieldSelector> FieldSelector::Parse(
    absl::string_view text, const std::vector<std::string>& supported) {
  FieldSelector sel;
  if (absl::StripAsciiWhitespace(text).empty()) return sel;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    absl::string_view p = absl::StripAsciiWhitespace(raw);
    Requirement r;
    size_t pos;
    if ((pos = p.find("!=")) != absl::string_view::npos) {
      r.negate = true;
      r.field = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.value = std::string(absl::StripAsciiWhitespace(p.substr(pos + 2)));
    } else if ((pos = p.find('=')) != absl::string_view::npos) {
      r.negate = false;
      r.field = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      absl::string_view v = p.substr(pos + 1);
      absl::ConsumePrefix(&v, "=");
      r.value = std::string(absl::StripAsciiWhitespace(v));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid field selector: '", p, "': expected field=value"));
    }
    if (std::find(supported.begin(), supported.end(), r.field) ==
        supported.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field label not supported: ", r.field,
                       " (supported: ", absl::StrJoin(supported, ", "), ")"));
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::Matches(const json& object) const {
  for (const Requirement& r : reqs_) {
    bool eq = FieldValue(object, r.field) == r.value;
    if (eq == r.negate) return false;
  }
  return true;
}

absl::StatusOr<json> ApplyMergePatch(const json& original, const json& patch) {
  if (!patch.is_object()) {
    return absl::InvalidArgumentError("a merge patch must be a JSON object");
  }
  json out = original;
  out.merge_patch(patch);
  return out;
}

absl::StatusOr<json> ApplyJsonPatch(const json& original, const json& patch) {
  if (!patch.is_array()) {
    return absl::InvalidArgumentError("a JSON patch must be a JSON array");
  }
  try {
    return original.patch(patch);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the JSON patch does not apply: ", e.what()));
  }
}

namespace {

// The patch merge key of a list field of the built-in types ("" = replace).
std::string MergeKey(const std::string& field, const json& items) {
  static const auto* keys = new std::map<std::string, std::string>{
      {"containers", "name"},
      {"initContainers", "name"},
      {"ephemeralContainers", "name"},
      {"volumes", "name"},
      {"env", "name"},
      {"volumeMounts", "mountPath"},
      {"volumeDevices", "devicePath"},
      {"imagePullSecrets", "name"},
      {"ownerReferences", "uid"},
      {"conditions", "type"},
      {"hostAliases", "ip"},
      {"topologySpreadConstraints", "topologyKey"},
      {"resourceClaims", "name"},
      {"containerStatuses", "name"},
      {"initContainerStatuses", "name"},
      {"secrets", "name"},
  };
  if (field == "ports") {
    // Container ports merge by containerPort, service ports by port.
    for (const json& i : items) {
      if (i.is_object() && i.contains("containerPort")) return "containerPort";
    }
    return "port";
  }
  auto it = keys->find(field);
  return it == keys->end() ? "" : it->second;
}

bool MergesAsSet(const std::string& field) { return field == "finalizers"; }

bool IsDirective(const std::string& k) { return !k.empty() && k[0] == '$'; }

json StripDirectives(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!IsDirective(it.key())) out[it.key()] = StripDirectives(it.value());
    }
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const json& e : v) {
      if (e.is_object() && e.contains("$patch")) continue;
      out.push_back(StripDirectives(e));
    }
    return out;
  }
  return v;
}

absl::StatusOr<json> MergeMap(const json& original, const json& patch,
                              bool* deleted);

absl::StatusOr<json> MergeList(const std::string& field, const json& original,
                               const json& patch) {
  std::string key = MergeKey(field, patch);
  if (key.empty() && original.is_array()) key = MergeKey(field, original);
  if (MergesAsSet(field)) {
    json out = original.is_array() ? original : json::array();
    for (const json& v : patch) {
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
    return out;
  }
  if (key.empty() || !original.is_array()) return StripDirectives(patch);
  // {"$patch": "replace"} as an element replaces the whole list.
  for (const json& e : patch) {
    if (e.is_object() && e.value("$patch", "") == "replace") {
      return StripDirectives(patch);
    }
  }
  json out = original;
  for (const json& e : patch) {
    if (!e.is_object() || !e.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("strategic merge patch: an element of \"", field,
                       "\" lacks its merge key \"", key, "\""));
    }
    auto same = [&](const json& o) {
      return o.is_object() && o.contains(key) && o[key] == e[key];
    };
    auto it = std::find_if(out.begin(), out.end(), same);
    if (e.value("$patch", "") == "delete") {
      if (it != out.end()) out.erase(it);
      continue;
    }
    if (it == out.end()) {
      out.push_back(StripDirectives(e));
    } else {
      bool del = false;
      absl::StatusOr<json> merged = MergeMap(*it, e, &del);
      if (!merged.ok()) return merged.status();
      *it = std::move(*merged);
    }
  }
  return out;
}

std::string ElementId(const json& e, const std::string& key) {
  if (!key.empty() && e.is_object() && e.contains(key)) return e[key].dump();
  return e.dump();
}

absl::StatusOr<json> MergeMap(const json& original, const json& patch,
                              bool* deleted) {
  *deleted = false;
  std::string directive = patch.value("$patch", "");
  if (directive == "delete") {
    *deleted = true;
    return json();
  }
  if (directive == "replace") return StripDirectives(patch);
  if (!directive.empty() && directive != "merge") {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategic merge patch: unknown $patch \"", directive, "\""));
  }
  json out = original.is_object() ? original : json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (IsDirective(k)) continue;
    if (v.is_null()) {
      out.erase(k);
    } else if (v.is_object()) {
      bool del = false;
      absl::StatusOr<json> m =
          MergeMap(out.contains(k) ? out[k] : json::object(), v, &del);
      if (!m.ok()) return m.status();
      if (del) {
        out.erase(k);
      } else {
        out[k] = std::move(*m);
      }
    } else if (v.is_array()) {
      absl::StatusOr<json> m =
          MergeList(k, out.contains(k) ? out[k] : json(), v);
      if (!m.ok()) return m.status();
      out[k] = std::move(*m);
    } else {
      out[k] = v;
    }
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    if (absl::StartsWith(k, "$deleteFromPrimitiveList/")) {
      std::string f = k.substr(strlen("$deleteFromPrimitiveList/"));
      if (out.contains(f) && out[f].is_array() && it.value().is_array()) {
        json kept = json::array();
        for (const json& e : out[f]) {
          if (std::find(it.value().begin(), it.value().end(), e) ==
              it.value().end()) {
            kept.push_back(e);
          }
        }
        out[f] = kept;
      }
    } else if (absl::StartsWith(k, "$setElementOrder/")) {
      std::string f = k.substr(strlen("$setElementOrder/"));
      if (!out.contains(f) || !out[f].is_array() || !it.value().is_array()) {
        continue;
      }
      std::string key = MergeKey(f, out[f]);
      std::map<std::string, size_t> rank;
      for (size_t i = 0; i < it.value().size(); ++i) {
        rank.emplace(ElementId(it.value()[i], key), i);
      }
      std::vector<json> items(out[f].begin(), out[f].end());
      std::stable_sort(
          items.begin(), items.end(), [&](const json& a, const json& b) {
            auto ra = rank.find(ElementId(a, key));
            auto rb = rank.find(ElementId(b, key));
            size_t ia = ra == rank.end() ? rank.size() : ra->second;
            size_t ib = rb == rank.end() ? rank.size() : rb->second;
            return ia < ib;
          });
      out[f] = json(items);
    }
  }
  if (patch.contains("$retainKeys")) {
    const json& keep = patch["$retainKeys"];
    if (!keep.is_array()) {
      return absl::InvalidArgumentError(
          "strategic merge patch: $retainKeys must be a list");
    }
    json kept = json::object();
    for (auto it = out.begin(); it != out.end(); ++it) {
      if (std::find(keep.begin(), keep.end(), json(it.key())) != keep.end()) {
        kept[it.key()] = it.value();
      }
    }
    out = kept;
  }
  return out;
}

}  // namespace

absl::StatusOr<json> ApplyStrategicMergePatch(const json& original,
                                              const json& patch) {
  if (!patch.is_object()) {
    return absl::InvalidArgumentError(
        "a strategic merge patch must be a JSON object");
  }
  bool deleted = false;
  absl::StatusOr<json> out = MergeMap(original, patch, &deleted);
  if (!out.ok()) return out.status();
  if (deleted) {
    return absl::InvalidArgumentError(
        "strategic merge patch: $patch: delete of the whole object");
  }
  return out;
}

std::string FormatTimeSeconds(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string FormatTimeNano(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseTime(absl::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid RFC 3339 time \"", text, "\": ", err));
  }
  return t;
}

}  // namespace testing
}  // namespace kube
}  // namespace kiln
