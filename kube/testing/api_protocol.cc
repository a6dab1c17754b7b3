#include "kube/testing/api_protocol.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kiln::kube::testing::fake_api {

using nlohmann::json;

std::string ReasonOf(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "Unknown";
  }
}

json StatusJson(int code, const std::string& reason, const std::string& message,
                const json& details) {
  json s = {
      {"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
      {"status", "Failure"}, {"message", message}, {"reason", reason},
      {"code", code}};
  if (!details.is_null()) s["details"] = details;
  return s;
}

Reply Err(int code, const std::string& message, const std::string& reason,
          const json& details) {
  Reply r;
  r.code = code;
  r.body = StatusJson(code, reason.empty() ? ReasonOf(code) : reason, message,
                      details);
  return r;
}

Reply NotFound(const Resource& res, const std::string& name) {
  std::string group = res.group.empty() ? "" : "." + res.group;
  return Err(404, absl::StrCat(res.plural, group, " \"", name, "\" not found"),
             "NotFound",
             json{{"name", name}, {"kind", res.plural}, {"group", res.group}});
}

Reply Conflict(const Resource& res, const std::string& name) {
  return Err(
      409,
      absl::StrCat("Operation cannot be fulfilled on ", res.plural, " \"", name,
                   "\": the object has been modified; please apply "
                   "your changes to the latest version and try again"),
      "Conflict", json{{"name", name}, {"kind", res.plural}});
}

Reply Invalid(const Resource& res, const std::string& name,
              const std::vector<std::pair<std::string, std::string>>& causes) {
  json c = json::array();
  std::vector<std::string> parts;
  for (const auto& [field, msg] : causes) {
    c.push_back(
        {{"reason", "FieldValueInvalid"}, {"message", msg}, {"field", field}});
    parts.push_back(field + ": " + msg);
  }
  return Err(422,
             absl::StrCat(res.kind, " \"", name,
                          "\" is invalid: ", absl::StrJoin(parts, ", ")),
             "Invalid",
             json{{"name", name}, {"kind", res.kind}, {"causes", c}});
}

Reply Expired(int64_t asked, int64_t oldest) {
  return Err(
      410, absl::StrCat("too old resource version: ", asked, " (", oldest, ")"),
      "Expired");
}

bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

bool IsDnsSubdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (absl::string_view part : absl::StrSplit(s, '.')) {
    if (!IsDnsLabel(std::string(part))) return false;
  }
  return true;
}

std::string NewUid() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> l(mu);
  uint64_t a = rng(), b = rng();
  std::string h = absl::StrFormat("%016x%016x", a, b);
  return absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-4",
                      h.substr(13, 3), "-a", h.substr(17, 3), "-",
                      h.substr(20, 12));
}

std::string RandomSuffix(int n) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  static const char kChars[] = "bcdfghjklmnpqrstvwxz2456789";
  std::lock_guard<std::mutex> l(mu);
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(kChars[rng() % (sizeof(kChars) - 1)]);
  return s;
}

int64_t RvOf(const json& obj) {
  int64_t v = 0;
  if (obj.contains("metadata") && obj["metadata"].contains("resourceVersion") &&
      obj["metadata"]["resourceVersion"].is_string()) {
    if (!absl::SimpleAtoi(obj["metadata"]["resourceVersion"].get<std::string>(),
                          &v)) {
      return -1;
    }
  }
  return v;
}

std::string MetaString(const json& obj, const char* field) {
  if (!obj.is_object() || !obj.contains("metadata") ||
      !obj["metadata"].is_object())
    return "";
  const json& m = obj["metadata"];
  return m.contains(field) && m[field].is_string() ? m[field].get<std::string>()
                                                   : "";
}

bool IsApplyPatch(const std::string& content_type) {
  return absl::StartsWith(content_type, "application/apply-patch");
}

std::string RequestKind(const httplib::Request& req) {
  Target t;
  std::string why;
  if (!ParseTarget(req.path, &t, &why)) {
    return absl::StrCat(req.method, " nonresource");
  }
  std::string verb = req.method;
  const std::string w =
      req.has_param("watch") ? req.get_param_value("watch") : "";
  bool watch = w == "1" || w == "t" || w == "T" || w == "true" || w == "TRUE" ||
               w == "True";
  if (req.method == "GET") {
    verb = !t.name.empty() ? "get" : watch ? "watch" : "list";
  } else if (req.method == "POST") {
    verb = "create";
  } else if (req.method == "PUT") {
    verb = "update";
  } else if (req.method == "PATCH") {
    verb = "patch";
  } else if (req.method == "DELETE") {
    verb = t.name.empty() ? "deletecollection" : "delete";
  }
  std::string res = t.res->plural;
  if (!t.sub.empty()) absl::StrAppend(&res, "/", t.sub);
  return absl::StrCat(verb, " ", res);
}

bool ParseTarget(const std::string& path, Target* t, std::string* why) {
  std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
  std::string group, version;
  size_t i;
  if (seg.size() >= 3 && seg[0] == "api") {
    version = seg[1];
    i = 2;
  } else if (seg.size() >= 4 && seg[0] == "apis") {
    group = seg[1];
    version = seg[2];
    i = 3;
  } else {
    return false;
  }
  std::vector<std::string> rest(seg.begin() + i, seg.end());
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    const Resource* r = FindResource(group, version, rest[2]);
    if (r != nullptr && r->namespaced) {
      if (rest.size() > 5) {
        *why = "too many path segments";
        return false;
      }
      t->res = r;
      t->ns = rest[1];
      if (rest.size() >= 4) t->name = rest[3];
      if (rest.size() >= 5) t->sub = rest[4];
      return true;
    }
  }
  const Resource* r = FindResource(group, version, rest[0]);
  if (r == nullptr) {
    *why = absl::StrCat("the server could not find the requested resource (",
                        path, ")");
    return false;
  }
  if (rest.size() > 3 || (r->namespaced && rest.size() > 1)) {
    *why = absl::StrCat("the server could not find the requested resource (",
                        path, ")");
    return false;
  }
  t->res = r;
  if (rest.size() >= 2) t->name = rest[1];
  if (rest.size() >= 3) t->sub = rest[2];
  return true;
}

}  // namespace kiln::kube::testing::fake_api
