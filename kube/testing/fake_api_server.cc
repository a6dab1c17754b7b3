#include "kube/testing/fake_api_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "kube/testing/api_objects.h"
#include "kube/testing/namespace_lifecycle.h"
#include "kube/testing/openapi.h"
#include "kube/testing/server_side_apply.h"
#include "re2/re2.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;

// ---- The resources the double serves. ----
struct Resource {
  std::string group;  // "" = core
  std::string version;
  std::string plural;
  std::string singular;
  std::string kind;
  bool namespaced;
  bool has_status;      // a /status subresource; updates keep the other part
  bool has_generation;  // metadata.generation follows spec changes
  std::vector<std::string> short_names;
  std::vector<std::string> fields;  // field selectors besides metadata.*

  std::string api_version() const {
    return group.empty() ? version : group + "/" + version;
  }
  std::string id() const { return group + "/" + plural; }
  std::string prefix() const {
    return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  }
};

const std::vector<Resource>& Resources() {
  static const auto* r = new std::vector<Resource>{
      {"",
       "v1",
       "namespaces",
       "namespace",
       "Namespace",
       false,
       true,
       false,
       {"ns"},
       {"status.phase"}},
      {"",
       "v1",
       "pods",
       "pod",
       "Pod",
       true,
       true,
       true,
       {"po"},
       {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
        "spec.serviceAccountName", "status.phase", "status.podIP",
        "status.nominatedNodeName"}},
      {"",
       "v1",
       "secrets",
       "secret",
       "Secret",
       true,
       false,
       false,
       {},
       {"type"}},
      {"",
       "v1",
       "configmaps",
       "configmap",
       "ConfigMap",
       true,
       false,
       false,
       {"cm"},
       {}},
      {"",
       "v1",
       "events",
       "event",
       "Event",
       true,
       false,
       false,
       {"ev"},
       {"involvedObject.kind", "involvedObject.namespace",
        "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source",
        "type"}},
      {"",
       "v1",
       "serviceaccounts",
       "serviceaccount",
       "ServiceAccount",
       true,
       false,
       false,
       {"sa"},
       {}},
      {"",
       "v1",
       "services",
       "service",
       "Service",
       true,
       true,
       false,
       {"svc"},
       {}},
      {"networking.k8s.io",
       "v1",
       "ingresses",
       "ingress",
       "Ingress",
       true,
       true,
       true,
       {"ing"},
       {}},
      {"apps",
       "v1",
       "deployments",
       "deployment",
       "Deployment",
       true,
       true,
       true,
       {"deploy"},
       {}},
      {"apps",
       "v1",
       "replicasets",
       "replicaset",
       "ReplicaSet",
       true,
       true,
       true,
       {"rs"},
       {"status.replicas"}},
      {"apps",
       "v1",
       "statefulsets",
       "statefulset",
       "StatefulSet",
       true,
       true,
       true,
       {"sts"},
       {}},
      {"apps",
       "v1",
       "daemonsets",
       "daemonset",
       "DaemonSet",
       true,
       true,
       true,
       {"ds"},
       {}},
      {"batch",
       "v1",
       "jobs",
       "job",
       "Job",
       true,
       true,
       true,
       {},
       {"status.successful"}},
      {"batch",
       "v1",
       "cronjobs",
       "cronjob",
       "CronJob",
       true,
       true,
       true,
       {"cj"},
       {}},
      // What a factory manages (engine/factory), as plain objects.
      {"",
       "v1",
       "resourcequotas",
       "resourcequota",
       "ResourceQuota",
       true,
       true,
       false,
       {"quota"},
       {}},
      {"",
       "v1",
       "limitranges",
       "limitrange",
       "LimitRange",
       true,
       false,
       false,
       {"limits"},
       {}},
      {"networking.k8s.io",
       "v1",
       "networkpolicies",
       "networkpolicy",
       "NetworkPolicy",
       true,
       false,
       true,
       {"netpol"},
       {}},
      {"rbac.authorization.k8s.io",
       "v1",
       "roles",
       "role",
       "Role",
       true,
       false,
       false,
       {},
       {}},
      {"rbac.authorization.k8s.io",
       "v1",
       "rolebindings",
       "rolebinding",
       "RoleBinding",
       true,
       false,
       false,
       {},
       {}},
      {"rbac.authorization.k8s.io",
       "v1",
       "clusterroles",
       "clusterrole",
       "ClusterRole",
       false,
       false,
       false,
       {},
       {}},
      {"rbac.authorization.k8s.io",
       "v1",
       "clusterrolebindings",
       "clusterrolebinding",
       "ClusterRoleBinding",
       false,
       false,
       false,
       {},
       {}},
  };
  return *r;
}

// The named API groups of the table (every one at v1).
const Resource* FindResource(const std::string& group,
                             const std::string& version,
                             const std::string& plural) {
  for (const Resource& r : Resources()) {
    if (r.group == group && r.version == version && r.plural == plural) {
      return &r;
    }
  }
  return nullptr;
}

// The named API groups the resources belong to, in first-seen order.
const std::vector<std::string>& ApiGroups() {
  static const auto* groups = [] {
    auto* g = new std::vector<std::string>();
    for (const Resource& r : Resources()) {
      if (!r.group.empty() && !absl::c_linear_search(*g, r.group)) {
        g->push_back(r.group);
      }
    }
    return g;
  }();
  return *groups;
}

const Resource& PodsResource() { return *FindResource("", "v1", "pods"); }
const Resource& NamespacesResource() {
  return *FindResource("", "v1", "namespaces");
}

std::vector<std::string> SupportedFields(const Resource& r) {
  std::vector<std::string> f = {"metadata.name"};
  if (r.namespaced) f.push_back("metadata.namespace");
  f.insert(f.end(), r.fields.begin(), r.fields.end());
  return f;
}

// ---- Replies. ----
struct Reply {
  int code = 200;
  json body;
  std::vector<std::pair<std::string, std::string>> headers;
};

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
                const json& details = json()) {
  json s = {
      {"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
      {"status", "Failure"}, {"message", message}, {"reason", reason},
      {"code", code}};
  if (!details.is_null()) s["details"] = details;
  return s;
}

Reply Err(int code, const std::string& message, const std::string& reason = "",
          const json& details = json()) {
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

// ---- Request targets. ----
struct Target {
  const Resource* res = nullptr;
  std::string ns;    // "" for cluster-scoped or all-namespaces
  std::string name;  // "" for a collection
  std::string sub;   // subresource ("log", "status")
};

bool ParseTarget(const std::string& path, Target* t, std::string* why);

bool IsApplyPatch(const std::string& content_type) {
  return absl::StartsWith(content_type, "application/apply-patch");
}

// The Kubernetes verb and resource of a request (request_counts()).
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

// Parses /api/v1/... and /apis/G/V/... resource paths. Returns false when
// the path names no resource (discovery paths, unknown resources).
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

// ---- Connection threads. ----
// cpp-httplib hands each accepted connection to a TaskQueue job that lives
// as long as the connection (watches and log streams hold theirs). The pool
// grows on demand up to `max` threads; later jobs queue.
class ConnectionPool : public httplib::TaskQueue {
 public:
  explicit ConnectionPool(size_t max) : max_(max) {}
  ~ConnectionPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    MutexLock l(&mu_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && threads_.size() < max_) {
      threads_.emplace_back([this] { Work(); });
    }
  }

  void shutdown() override {
    std::vector<std::thread> threads;
    {
      MutexLock l(&mu_);
      done_ = true;
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  void Work() {
    MutexLock l(&mu_);
    for (;;) {
      ++idle_;
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return done_ || !jobs_.empty();
      });
      --idle_;
      if (jobs_.empty()) return;
      std::function<void()> fn = std::move(jobs_.front());
      jobs_.pop_front();
      mu_.Unlock();
      fn();
      mu_.Lock();
    }
  }

  const size_t max_;
  Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// Go's duration.HumanDuration, as kubectl's AGE column prints it.
std::string HumanDuration(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 0) s = 0;
  if (s < 120) return absl::StrCat(s, "s");
  int64_t m = s / 60;
  if (m < 10) {
    return s % 60 == 0 ? absl::StrCat(m, "m")
                       : absl::StrCat(m, "m", s % 60, "s");
  }
  if (m < 180) return absl::StrCat(m, "m");
  int64_t h = m / 60;
  if (h < 8) {
    return m % 60 == 0 ? absl::StrCat(h, "h")
                       : absl::StrCat(h, "h", m % 60, "m");
  }
  if (h < 48) return absl::StrCat(h, "h");
  int64_t days = h / 24;
  if (h < 24 * 8) {
    return h % 24 == 0 ? absl::StrCat(days, "d")
                       : absl::StrCat(days, "d", h % 24, "h");
  }
  if (days < 365 * 2) return absl::StrCat(days, "d");
  return absl::StrCat(days / 365, "y");
}

std::string Age(const json& obj) {
  absl::StatusOr<absl::Time> t =
      ParseTime(MetaString(obj, "creationTimestamp"));
  return t.ok() ? HumanDuration(absl::Now() - *t) : "<unknown>";
}

// The STATUS column of `kubectl get pods`.
std::string PodStatusColumn(const json& pod) {
  const json& st = pod.contains("status") ? pod["status"] : json::object();
  std::string reason = st.value("reason", st.value("phase", "Unknown"));
  if (st.contains("containerStatuses")) {
    for (const json& cs : st["containerStatuses"]) {
      if (!cs.contains("state")) continue;
      const json& state = cs["state"];
      if (state.contains("waiting") &&
          !state["waiting"].value("reason", "").empty()) {
        reason = state["waiting"]["reason"];
      } else if (state.contains("terminated")) {
        std::string r = state["terminated"].value("reason", "");
        if (!r.empty()) reason = r;
      }
    }
  }
  if (pod["metadata"].contains("deletionTimestamp")) reason = "Terminating";
  return reason;
}

json Column(const std::string& name, const std::string& type,
            const std::string& format = "") {
  return {{"name", name},
          {"type", type},
          {"format", format},
          {"description", name},
          {"priority", 0}};
}

json TableColumns(const Resource& r) {
  json cols = json::array({Column("Name", "string", "name")});
  if (r.plural == "pods") {
    cols.push_back(Column("Ready", "string"));
    cols.push_back(Column("Status", "string"));
    cols.push_back(Column("Restarts", "string"));
  } else if (r.plural == "secrets") {
    cols.push_back(Column("Type", "string"));
    cols.push_back(Column("Data", "string"));
  } else if (r.plural == "configmaps") {
    cols.push_back(Column("Data", "string"));
  } else if (r.plural == "namespaces") {
    cols.push_back(Column("Status", "string"));
  }
  cols.push_back(Column("Age", "string"));
  return cols;
}

json TableRow(const Resource& r, const json& obj, const std::string& include) {
  json cells = json::array({MetaString(obj, "name")});
  if (r.plural == "pods") {
    int total = obj.contains("spec") && obj["spec"].contains("containers")
                    ? static_cast<int>(obj["spec"]["containers"].size())
                    : 0;
    int ready = 0, restarts = 0;
    if (obj.contains("status") && obj["status"].contains("containerStatuses")) {
      for (const json& cs : obj["status"]["containerStatuses"]) {
        if (cs.value("ready", false)) ++ready;
        restarts += cs.value("restartCount", 0);
      }
    }
    cells.push_back(absl::StrCat(ready, "/", total));
    cells.push_back(PodStatusColumn(obj));
    cells.push_back(absl::StrCat(restarts));
  } else if (r.plural == "secrets") {
    cells.push_back(obj.value("type", ""));
    cells.push_back(
        absl::StrCat(obj.contains("data") ? obj["data"].size() : 0));
  } else if (r.plural == "configmaps") {
    cells.push_back(
        absl::StrCat(obj.contains("data") ? obj["data"].size() : 0));
  } else if (r.plural == "namespaces") {
    cells.push_back(obj.contains("status") ? obj["status"].value("phase", "")
                                           : "");
  }
  cells.push_back(Age(obj));
  json row = {{"cells", cells}};
  if (include == "Object") {
    json full = obj;
    full["kind"] = r.kind;
    full["apiVersion"] = r.api_version();
    row["object"] = full;
  } else if (include != "None") {
    row["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/v1"},
                     {"metadata", obj.value("metadata", json::object())}};
  }
  return row;
}

// A Table (meta.k8s.io/v1) of objects, as `kubectl get` asks for.
json ToTable(const Resource& r, const std::vector<json>& objects,
             const json& list_meta, bool with_columns,
             const std::string& include) {
  json rows = json::array();
  for (const json& o : objects) rows.push_back(TableRow(r, o, include));
  json t = {{"kind", "Table"},
            {"apiVersion", "meta.k8s.io/v1"},
            {"metadata", list_meta},
            {"rows", rows}};
  if (with_columns) t["columnDefinitions"] = TableColumns(r);
  return t;
}

bool WantsTable(const httplib::Request& req) {
  return absl::StrContains(req.get_header_value("Accept"), "as=Table");
}

}  // namespace

// ---- The server. ----
class FakeApiServer::Impl {
 public:
  explicit Impl(FakeApiServerOptions opts) : opts_(std::move(opts)) {}
  ~Impl() { Stop(); }

  absl::Status Start();
  void Stop();
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  absl::Status WriteKubeconfig(const std::string& path,
                               const std::string& ns) const;
  absl::StatusOr<json> GetObject(const std::string& api_path);
  absl::Status MutatePod(const std::string& ns, const std::string& name,
                         const std::function<void(json&)>& fn);
  absl::StatusOr<std::vector<json>> ListObjects(const std::string& path);
  absl::Status MutateObject(const std::string& api_path,
                            const std::function<void(json&)>& fn);
  absl::StatusOr<json> CreateObject(const std::string& path, json object);
  void RecordObjectEvent(const json& object, const std::string& type,
                         const std::string& reason, const std::string& message,
                         const std::string& component);
  void AppendLog(const std::string& ns, const std::string& pod,
                 const std::string& container, absl::string_view line,
                 absl::Time time);
  void EndLog(const std::string& ns, const std::string& pod,
              const std::string& container);
  void RecordEvent(const std::string& ns, const std::string& pod,
                   const std::string& type, const std::string& reason,
                   const std::string& message);
  void SetKubelet(KubeletHooks hooks) {
    MutexLock l(&mu_);
    hooks_ = std::move(hooks);
  }
  absl::Status FinalizePodDeletion(const std::string& ns,
                                   const std::string& name);
  void InjectFault(const std::string& method, const std::string& path_regex,
                   int code, int count, int retry_after_seconds);
  void DropWatches();
  void DropLogStreams();
  void CompactHistory();
  void ExpireWatches();
  int64_t request_count() const { return requests_.load(); }
  std::map<std::string, int64_t> request_counts() const {
    MutexLock l(&mu_);
    return request_kinds_;
  }
  int64_t resource_version() const {
    MutexLock l(&mu_);
    return rv_;
  }

 private:
  struct Change {
    int64_t rv;
    const Resource* res;
    std::string ns;
    std::string type;  // ADDED, MODIFIED, DELETED
    json object;
    json old;  // the object before (MODIFIED), null otherwise
  };
  struct Watcher {
    const Resource* res;
    std::string ns;
    LabelSelector labels;
    FieldSelector fields;
    bool bookmarks = false;
    bool table = false;  // events carry Tables (kubectl get --watch)
    bool table_columns_sent = false;
    std::string include_object;
    absl::Time deadline;
    absl::Time next_bookmark;
    std::deque<std::shared_ptr<const Change>> queue;
    bool dropped = false;
    bool expired = false;
    int64_t expired_rv = 0;
  };
  struct LogLine {
    absl::Time time;
    std::string text;
  };
  struct LogBuf {
    std::vector<LogLine> lines;
    bool ended = false;
  };
  struct Fault {
    std::string method;
    std::unique_ptr<RE2> path;
    int code;
    int count;
    int retry_after;
  };
  struct Request {
    std::string method;
    std::string path;
    const httplib::Request* http;
    std::string param(const std::string& k) const {
      return http->has_param(k.c_str()) ? http->get_param_value(k.c_str()) : "";
    }
    bool flag(const std::string& k) const {
      // Go's strconv.ParseBool, as the real server parses query flags.
      std::string v = param(k);
      return v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" ||
             v == "True";
    }
  };

  void Handle(const httplib::Request& req, httplib::Response& res);
  Reply Route(const Request& r, httplib::Response& res, bool* streamed);
  Reply Discovery(const std::string& path, bool* found);
  Reply ResourceList(const std::string& group, const std::string& version);

  Reply Get(const Target& t) ABSL_LOCKS_EXCLUDED(mu_);
  Reply List(const Target& t, const Request& r) ABSL_LOCKS_EXCLUDED(mu_);
  Reply Watch(const Target& t, const Request& r, httplib::Response& res,
              bool* streamed) ABSL_LOCKS_EXCLUDED(mu_);
  // `manager`: the fieldManager parameter ("" = no ownership recorded).
  Reply Create(const Target& t, json obj, bool dry_run,
               const std::string& manager) ABSL_LOCKS_EXCLUDED(mu_);
  Reply Update(const Target& t, json obj, bool dry_run,
               const std::string& manager) ABSL_LOCKS_EXCLUDED(mu_);
  Reply Patch(const Target& t, const std::string& content_type,
              const json& patch, bool dry_run, const std::string& manager)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Server-side apply (server_side_apply.h); creates a missing object.
  Reply ApplyPatch(const Target& t, const json& applied, bool dry_run,
                   const std::string& manager, bool force)
      ABSL_LOCKS_EXCLUDED(mu_);
  Reply Delete(const Target& t, const Request& r, const json& options)
      ABSL_LOCKS_EXCLUDED(mu_);
  Reply Logs(const Target& t, const Request& r, httplib::Response& res,
             bool* streamed) ABSL_LOCKS_EXCLUDED(mu_);

  // Under mu_.
  std::map<std::string, json>& Bucket(const Resource& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return store_[r.id()];
  }
  static std::string Key(const std::string& ns, const std::string& name) {
    return ns + "/" + name;
  }
  json* Find(const Resource& r, const std::string& ns, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool NamespaceExists(const std::string& ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply StoreNew(const Resource& r, const std::string& ns, json obj,
                 bool dry_run, json* stored) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply StoreUpdate(const Resource& r, const std::string& ns,
                    const std::string& name, const std::string& sub, json obj,
                    bool dry_run, json* stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remove(const Resource& r, const std::string& ns, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveNamespaceContents(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit(const Resource& r, const std::string& ns, const std::string& type,
            const json& obj, const json& old)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool WatcherSees(const Watcher& w, const json& obj) const;
  void AppendEvent(Watcher& w, const Change& c, std::string* out) const;
  std::string LogKey(const std::string& ns, const std::string& pod,
                     const std::string& c) const {
    return ns + "/" + pod + "/" + c;
  }

  const FakeApiServerOptions opts_;
  httplib::Server svr_;
  std::thread listen_thread_;
  int port_ = 0;
  std::atomic<int64_t> requests_{0};

  mutable Mutex mu_;
  // request_counts(): "verb resource[/sub]" -> requests.
  std::map<std::string, int64_t> request_kinds_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rv_ ABSL_GUARDED_BY(mu_) = 1;
  // resourceVersions <= compacted_rv_ (but < rv_) answer 410.
  int64_t compacted_rv_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::map<std::string, json>> store_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<const Change>> history_ ABSL_GUARDED_BY(mu_);
  std::list<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LogBuf> logs_ ABSL_GUARDED_BY(mu_);
  int64_t log_drop_gen_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  KubeletHooks hooks_ ABSL_GUARDED_BY(mu_);
  int64_t event_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Removes Terminating namespaces (namespace_lifecycle.h); set by Start().
  std::unique_ptr<NamespaceReaper> reaper_;
  void FinishNamespace(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
};

absl::Status FakeApiServer::Impl::Start() {
  svr_.new_task_queue = [this] {
    return new ConnectionPool(static_cast<size_t>(opts_.max_connections));
  };
  svr_.set_payload_max_length(opts_.max_body_bytes);
  // Idle keep-alive connections hold a thread until this expires; Stop()
  // waits for them, so keep it short.
  svr_.set_keep_alive_timeout(1);
  // One request per connection: with Debian's cpp-httplib 0.11 a streamed
  // (chunked) response to the second request on a kept-alive connection
  // never reaches the client. Clients reconnect transparently.
  svr_.set_keep_alive_max_count(1);
  svr_.set_read_timeout(10, 0);
  svr_.set_write_timeout(10, 0);
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    Handle(req, res);
  };
  svr_.Get(".*", handler);
  svr_.Post(".*", handler);
  svr_.Put(".*", handler);
  svr_.Patch(".*", handler);
  svr_.Delete(".*", handler);
  svr_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 413) {
      json s = StatusJson(413, "RequestEntityTooLarge",
                          "the request body is larger than the double's limit");
      res.set_content(s.dump(), "application/json");
    }
  });
  {
    MutexLock l(&mu_);
    for (const std::string& ns : opts_.initial_namespaces) {
      json stored;
      Reply r = StoreNew(NamespacesResource(), "",
                         json{{"apiVersion", "v1"},
                              {"kind", "Namespace"},
                              {"metadata", {{"name", ns}}}},
                         false, &stored);
      if (r.code >= 300) {
        return absl::InvalidArgumentError(
            absl::StrCat("initial namespace \"", ns, "\": ", r.body.dump()));
      }
    }
  }
  reaper_ = std::make_unique<NamespaceReaper>(
      opts_.namespace_termination,
      [this](const std::string& name) { FinishNamespace(name); });
  port_ = svr_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) {
    return absl::UnavailableError("cannot bind a loopback port for the double");
  }
  listen_thread_ = std::thread([this] { svr_.listen_after_bind(); });
  // httplib's stop() does nothing to a server whose listen loop has not
  // started yet (the loop would then run forever and Stop() would hang in
  // join): return only once it runs.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!svr_.is_running()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          "the double's listen loop did not start within 30 s");
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

void FakeApiServer::Impl::Stop() {
  {
    MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  svr_.stop();
  if (listen_thread_.joinable()) listen_thread_.join();
  if (reaper_ != nullptr) reaper_->Stop();
}

void FakeApiServer::Impl::FinishNamespace(const std::string& name) {
  MutexLock l(&mu_);
  json* cur = Find(NamespacesResource(), "", name);
  if (cur != nullptr && IsNamespaceTerminating(*cur)) {
    Remove(NamespacesResource(), "", name);
  }
}

void FakeApiServer::Impl::Handle(const httplib::Request& req,
                                 httplib::Response& res) {
  requests_.fetch_add(1);
  {
    std::string kind = RequestKind(req);
    MutexLock l(&mu_);
    ++request_kinds_[kind];
  }
  // cpp-httplib gzips responses for clients that accept it (Go's transport
  // always does) and its compressor holds back streamed chunks, which would
  // stall watches and log follows. The request object is httplib's own
  // non-const local, handed to handlers as const.
  const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
  Request r;
  r.method = req.method;
  r.path = req.path;
  r.http = &req;
  bool streamed = false;
  Reply reply = Route(r, res, &streamed);
  if (streamed) return;
  res.status = reply.code;
  for (const auto& [k, v] : reply.headers) res.set_header(k.c_str(), v);
  res.set_content(reply.body.dump(), "application/json");
}

Reply FakeApiServer::Impl::Route(const Request& r, httplib::Response& res,
                                 bool* streamed) {
  const httplib::Request& req = *r.http;
  if (!opts_.bearer_token.empty() &&
      req.get_header_value("Authorization") != "Bearer " + opts_.bearer_token) {
    return Err(401, "Unauthorized");
  }
  bool watch = r.flag("watch");
  {
    MutexLock l(&mu_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if ((!it->method.empty() && it->method != r.method) ||
          !RE2::FullMatch(r.path, *it->path)) {
        continue;
      }
      Fault f = std::move(*it);
      if (--f.count > 0) {
        *it = std::move(f);
      } else {
        faults_.erase(it);
      }
      if (watch && f.code == 410) {
        // As the real server: the watch starts, then says Expired.
        auto w = std::make_shared<Watcher>();
        w->expired = true;
        w->expired_rv = rv_;
        json ev = {{"type", "ERROR"}, {"object", Expired(0, rv_).body}};
        res.status = 200;
        res.set_content(ev.dump() + "\n", "application/json");
        *streamed = true;
        return Reply();
      }
      Reply e = Err(f.code, absl::StrCat("injected fault ", f.code));
      if (f.code == 429 && f.retry_after > 0) {
        e.headers.push_back({"Retry-After", absl::StrCat(f.retry_after)});
        e.body["details"] = {{"retryAfterSeconds", f.retry_after}};
      }
      if (f.code == 409) {
        e.body["message"] =
            "Operation cannot be fulfilled: the object has "
            "been modified; please apply your changes to the "
            "latest version and try again (injected)";
      }
      return e;
    }
  }
  std::string ctype = req.get_header_value("Content-Type");
  if (absl::StartsWith(ctype, "application/vnd.kubernetes.protobuf")) {
    return Err(415,
               absl::StrCat("the API server double accepts JSON request bodies "
                            "only (got Content-Type ",
                            ctype,
                            "); send application/json (kubectl: use apply, "
                            "or create -f with -o json piped to apply)"),
               "UnsupportedMediaType");
  }
  if (r.method == "GET") {
    bool found = false;
    Reply d = Discovery(r.path, &found);
    if (found) return d;
    if (r.path == "/openapi/v2") {
      std::string accept = req.get_header_value("Accept");
      if (absl::StrContains(accept, "protobuf")) {
        res.status = 200;
        res.set_content(OpenApiV2Protobuf(),
                        "application/com.github.proto-openapi.spec.v2.v1.0+"
                        "protobuf");
      } else {
        res.status = 200;
        res.set_content(OpenApiV2Json().dump(), "application/json");
      }
      *streamed = true;
      return Reply();
    }
  }
  Target t;
  std::string why;
  if (!ParseTarget(r.path, &t, &why)) {
    return Err(404, why.empty() ? absl::StrCat("the server could not find the "
                                               "requested resource (",
                                               r.path, ")")
                                : why);
  }
  bool dry_run = r.param("dryRun") == "All";
  json body;
  if (r.method == "POST" || r.method == "PUT" || r.method == "PATCH" ||
      (r.method == "DELETE" && !req.body.empty())) {
    if (r.method == "PATCH" && IsApplyPatch(ctype)) {
      absl::StatusOr<json> parsed = ParseApplyBody(req.body);
      if (!parsed.ok()) return Err(400, std::string(parsed.status().message()));
      body = *std::move(parsed);
    } else {
      body = json::parse(req.body, nullptr, false);
      if (body.is_discarded()) {
        return Err(400, "the request body is not valid JSON");
      }
    }
  }
  if (!t.sub.empty() && t.sub != "status" &&
      !(t.sub == "log" && t.res->plural == "pods")) {
    return Err(404, absl::StrCat("the server could not find the requested "
                                 "resource (",
                                 r.path, ")"));
  }
  if (t.sub == "log") {
    if (r.method != "GET") return Err(405, "pods/log supports GET only");
    return Logs(t, r, res, streamed);
  }
  if (r.method == "GET") {
    if (t.name.empty() && watch) return Watch(t, r, res, streamed);
    Reply got = t.name.empty() ? List(t, r) : Get(t);
    if (got.code == 200 && WantsTable(req)) {
      std::vector<json> objects;
      json meta = json::object();
      if (t.name.empty()) {
        for (const json& i : got.body["items"]) objects.push_back(i);
        meta = got.body["metadata"];
      } else {
        objects.push_back(got.body);
        meta["resourceVersion"] = MetaString(got.body, "resourceVersion");
      }
      got.body = ToTable(*t.res, objects, meta, true, r.param("includeObject"));
    }
    return got;
  }
  if (r.method == "POST") {
    if (!t.name.empty()) return Err(405, "POST to a named object");
    if (t.res->namespaced && t.ns.empty()) {
      return Err(405, "POST needs a namespace in the path");
    }
    return Create(t, std::move(body), dry_run, r.param("fieldManager"));
  }
  if (r.method == "PUT") {
    if (t.name.empty()) return Err(405, "PUT to a collection");
    return Update(t, std::move(body), dry_run, r.param("fieldManager"));
  }
  if (r.method == "PATCH") {
    if (t.name.empty()) return Err(405, "PATCH to a collection");
    if (IsApplyPatch(ctype)) {
      return ApplyPatch(t, body, dry_run, r.param("fieldManager"),
                        r.flag("force"));
    }
    if (r.flag("force")) {
      return Err(422,
                 "force: Forbidden: may not be specified for non-apply "
                 "patch",
                 "Invalid");
    }
    return Patch(t, ctype, body, dry_run, r.param("fieldManager"));
  }
  if (r.method == "DELETE") {
    if (t.name.empty()) {
      return Err(405, "deletecollection is not supported by the double");
    }
    return Delete(t, r, body);
  }
  return Err(405, absl::StrCat("method ", r.method, " is not allowed"));
}

// ---- Discovery. ----
Reply FakeApiServer::Impl::ResourceList(const std::string& group,
                                        const std::string& version) {
  json resources = json::array();
  bool any = false;
  for (const Resource& r : Resources()) {
    if (r.group != group || r.version != version) continue;
    any = true;
    json e = {
        {"name", r.plural},
        {"singularName", r.singular},
        {"namespaced", r.namespaced},
        {"kind", r.kind},
        {"verbs",
         {"create", "delete", "get", "list", "patch", "update", "watch"}}};
    if (!r.short_names.empty()) e["shortNames"] = r.short_names;
    resources.push_back(e);
    if (r.has_status) {
      resources.push_back({{"name", r.plural + "/status"},
                           {"singularName", ""},
                           {"namespaced", r.namespaced},
                           {"kind", r.kind},
                           {"verbs", {"get", "patch", "update"}}});
    }
    if (r.plural == "pods") {
      resources.push_back({{"name", "pods/log"},
                           {"singularName", ""},
                           {"namespaced", true},
                           {"kind", "Pod"},
                           {"verbs", {"get"}}});
    }
  }
  if (!any) {
    return Err(404, absl::StrCat("the server could not find the requested "
                                 "resource (group version ",
                                 group, "/", version, ")"));
  }
  Reply rep;
  rep.body = {{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", group.empty() ? version : group + "/" + version},
              {"resources", resources}};
  return rep;
}

Reply FakeApiServer::Impl::Discovery(const std::string& path, bool* found) {
  *found = true;
  Reply rep;
  if (path == "/version") {
    rep.body = {{"major", "1"},
                {"minor", "32"},
                {"gitVersion", "v1.32.0-kiln-double"},
                {"gitCommit", "0000000000000000000000000000000000000000"},
                {"gitTreeState", "clean"},
                {"buildDate", "2026-01-01T00:00:00Z"},
                {"goVersion", "go1.23.0"},
                {"compiler", "gc"},
                {"platform", "linux/amd64"}};
    return rep;
  }
  if (path == "/api") {
    rep.body = {{"kind", "APIVersions"},
                {"versions", {"v1"}},
                {"serverAddressByClientCIDRs",
                 {{{"clientCIDR", "0.0.0.0/0"},
                   {"serverAddress", absl::StrCat("127.0.0.1:", port_)}}}}};
    return rep;
  }
  if (path == "/apis") {
    json groups = json::array();
    for (const std::string& g : ApiGroups()) {
      json gv = {{"groupVersion", std::string(g) + "/v1"}, {"version", "v1"}};
      groups.push_back(
          {{"name", g}, {"versions", {gv}}, {"preferredVersion", gv}});
    }
    rep.body = {
        {"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
    return rep;
  }
  if (path == "/api/v1") return ResourceList("", "v1");
  std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (seg.size() == 3 && seg[0] == "apis") return ResourceList(seg[1], seg[2]);
  if (seg.size() == 2 && seg[0] == "apis" &&
      absl::c_linear_search(ApiGroups(), seg[1])) {
    json gv = {{"groupVersion", seg[1] + "/v1"}, {"version", "v1"}};
    rep.body = {{"kind", "APIGroup"},
                {"apiVersion", "v1"},
                {"name", seg[1]},
                {"versions", {gv}},
                {"preferredVersion", gv}};
    return rep;
  }
  if (path == "/healthz" || path == "/readyz" || path == "/livez") {
    rep.body = "ok";
    return rep;
  }
  *found = false;
  return rep;
}

// ---- Storage. ----
json* FakeApiServer::Impl::Find(const Resource& r, const std::string& ns,
                                const std::string& name) {
  auto& b = Bucket(r);
  auto it = b.find(Key(ns, name));
  return it == b.end() ? nullptr : &it->second;
}

bool FakeApiServer::Impl::NamespaceExists(const std::string& ns) {
  return Find(NamespacesResource(), "", ns) != nullptr;
}

namespace {

void DefaultPod(json& pod) {
  json& spec = pod["spec"];
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) {
    spec["terminationGracePeriodSeconds"] = 30;
  }
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName"))
    spec["schedulerName"] = "default-scheduler";
  if (!spec.contains("serviceAccountName"))
    spec["serviceAccountName"] = "default";
  spec["serviceAccount"] = spec["serviceAccountName"];
  if (!spec.contains("securityContext"))
    spec["securityContext"] = json::object();
  if (!spec.contains("enableServiceLinks")) spec["enableServiceLinks"] = true;
  if (!spec.contains("preemptionPolicy")) {
    spec["preemptionPolicy"] = "PreemptLowerPriority";
  }
  if (!spec.contains("priority")) spec["priority"] = 0;
  bool any_resources = false;
  for (const char* list : {"initContainers", "containers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) continue;
    for (json& c : spec[list]) {
      if (!c.is_object()) continue;
      if (!c.contains("terminationMessagePath")) {
        c["terminationMessagePath"] = "/dev/termination-log";
      }
      if (!c.contains("terminationMessagePolicy")) {
        c["terminationMessagePolicy"] = "File";
      }
      if (!c.contains("imagePullPolicy")) {
        std::string image = c.value("image", "");
        size_t slash = image.rfind('/');
        std::string last =
            slash == std::string::npos ? image : image.substr(slash + 1);
        bool latest = last.find('@') == std::string::npos &&
                      (last.find(':') == std::string::npos ||
                       absl::EndsWith(last, ":latest"));
        c["imagePullPolicy"] = latest ? "Always" : "IfNotPresent";
      }
      if (!c.contains("resources")) c["resources"] = json::object();
      if (!c["resources"].empty()) any_resources = true;
    }
  }
  json& status = pod["status"];
  if (!status.is_object()) status = json::object();
  status["phase"] = "Pending";
  status["qosClass"] = any_resources ? "Burstable" : "BestEffort";
}

std::vector<std::pair<std::string, std::string>> ValidatePod(const json& pod) {
  std::vector<std::pair<std::string, std::string>> causes;
  const json& spec = pod.contains("spec") ? pod["spec"] : json();
  if (!spec.is_object()) {
    causes.push_back({"spec", "Required value"});
    return causes;
  }
  if (!spec.contains("containers") || !spec["containers"].is_array() ||
      spec["containers"].empty()) {
    causes.push_back({"spec.containers", "Required value"});
  }
  std::set<std::string> names;
  for (const char* list : {"initContainers", "containers"}) {
    if (!spec.contains(list)) continue;
    if (!spec[list].is_array()) {
      causes.push_back({absl::StrCat("spec.", list), "must be a list"});
      continue;
    }
    for (size_t i = 0; i < spec[list].size(); ++i) {
      const json& c = spec[list][i];
      std::string at = absl::StrCat("spec.", list, "[", i, "]");
      std::string name = c.is_object() ? c.value("name", "") : "";
      if (!IsDnsLabel(name)) {
        causes.push_back(
            {at + ".name", absl::StrCat("Invalid value: \"", name,
                                        "\": a lowercase RFC 1123 label")});
      } else if (!names.insert(name).second) {
        causes.push_back(
            {at + ".name", absl::StrCat("Duplicate value: \"", name, "\"")});
      }
      if (!c.is_object() || c.value("image", "").empty()) {
        causes.push_back({at + ".image", "Required value"});
      }
    }
  }
  std::string rp = spec.value("restartPolicy", "Always");
  if (rp != "Always" && rp != "OnFailure" && rp != "Never") {
    causes.push_back({"spec.restartPolicy",
                      absl::StrCat("Unsupported value: \"", rp, "\"")});
  }
  return causes;
}

// The pod spec with the fields an update may change blanked out.
json MutablePodSpec(json spec) {
  if (!spec.is_object()) return spec;
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) continue;
    for (json& c : spec[list]) {
      if (c.is_object()) c.erase("image");
    }
  }
  spec.erase("activeDeadlineSeconds");
  spec.erase("tolerations");
  spec.erase("terminationGracePeriodSeconds");
  return spec;
}

json SecretWithStringData(json obj, std::string* error) {
  if (obj.contains("stringData")) {
    if (!obj["stringData"].is_object()) {
      *error = "stringData must be a map";
      return obj;
    }
    if (!obj.contains("data") || !obj["data"].is_object()) {
      obj["data"] = json::object();
    }
    for (auto it = obj["stringData"].begin(); it != obj["stringData"].end();
         ++it) {
      if (!it.value().is_string()) {
        *error = "stringData values must be strings";
        return obj;
      }
      obj["data"][it.key()] = absl::Base64Escape(it.value().get<std::string>());
    }
    obj.erase("stringData");
  }
  if (obj.contains("data")) {
    if (!obj["data"].is_object()) {
      *error = "data must be a map";
      return obj;
    }
    for (auto it = obj["data"].begin(); it != obj["data"].end(); ++it) {
      std::string out;
      if (!it.value().is_string() ||
          !absl::Base64Unescape(it.value().get<std::string>(), &out)) {
        *error = absl::StrCat("data[", it.key(), "]: illegal base64 data");
        return obj;
      }
    }
  }
  if (!obj.contains("type")) obj["type"] = "Opaque";
  return obj;
}

}  // namespace

Reply FakeApiServer::Impl::StoreNew(const Resource& r, const std::string& ns,
                                    json obj, bool dry_run, json* stored) {
  if (!obj.is_object()) return Err(400, "the body must be a JSON object");
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) {
    obj["metadata"] = json::object();
  }
  json& meta = obj["metadata"];
  std::string kind = obj.value("kind", "");
  std::string av = obj.value("apiVersion", "");
  if ((!kind.empty() && kind != r.kind) ||
      (!av.empty() && av != r.api_version())) {
    return Err(400, absl::StrCat("the API version in the data (", av, " ", kind,
                                 ") does not match the expected API version (",
                                 r.api_version(), " ", r.kind, ")"));
  }
  obj["kind"] = r.kind;
  obj["apiVersion"] = r.api_version();
  if (r.namespaced) {
    std::string body_ns = MetaString(obj, "namespace");
    if (!body_ns.empty() && body_ns != ns) {
      return Err(400,
                 "the namespace of the provided object does not match "
                 "the namespace sent on the request");
    }
    meta["namespace"] = ns;
    if (!NamespaceExists(ns)) {
      return NotFound(NamespacesResource(), ns);
    }
    if (IsNamespaceTerminating(*Find(NamespacesResource(), "", ns))) {
      Reply refused;
      refused.code = 403;
      refused.body = NamespaceTerminatingStatus(r.plural, r.group,
                                                MetaString(obj, "name"), ns);
      return refused;
    }
  } else {
    meta.erase("namespace");
  }
  std::string name = MetaString(obj, "name");
  if (name.empty()) {
    std::string gen = MetaString(obj, "generateName");
    if (gen.empty()) {
      return Invalid(r, "",
                     {{"metadata.name",
                       "Required value: name or generateName is "
                       "required"}});
    }
    do {
      name = gen + RandomSuffix(5);
    } while (Find(r, ns, name) != nullptr);
    meta["name"] = name;
  }
  bool name_ok =
      r.plural == "namespaces" ? IsDnsLabel(name) : IsDnsSubdomain(name);
  if (!name_ok) {
    return Invalid(
        r, name,
        {{"metadata.name",
          absl::StrCat("Invalid value: \"", name, "\": a lowercase RFC 1123 ",
                       r.plural == "namespaces" ? "label" : "subdomain")}});
  }
  if (Find(r, ns, name) != nullptr) {
    std::string group = r.group.empty() ? "" : "." + r.group;
    return Err(409,
               absl::StrCat(r.plural, group, " \"", name, "\" already exists"),
               "AlreadyExists", json{{"name", name}, {"kind", r.plural}});
  }
  if (r.plural == "pods") {
    auto causes = ValidatePod(obj);
    if (!causes.empty()) return Invalid(r, name, causes);
    DefaultPod(obj);
  } else if (r.plural == "secrets") {
    std::string error;
    obj = SecretWithStringData(std::move(obj), &error);
    if (!error.empty()) return Invalid(r, name, {{"data", error}});
  } else if (r.plural == "namespaces") {
    obj["spec"] = {{"finalizers", {"kubernetes"}}};
    obj["status"] = {{"phase", "Active"}};
    if (!obj["metadata"].contains("labels")) {
      obj["metadata"]["labels"] = json::object();
    }
    obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
  } else if (r.has_status && !obj.contains("status")) {
    obj["status"] = json::object();
  }
  json& m = obj["metadata"];
  m["uid"] = NewUid();
  m["creationTimestamp"] = FormatTimeSeconds(absl::Now());
  m.erase("deletionTimestamp");
  m.erase("deletionGracePeriodSeconds");
  if (r.has_generation) {
    m["generation"] = 1;
  } else {
    m.erase("generation");
  }
  if (dry_run) {
    *stored = obj;
    Reply rep;
    rep.code = 201;
    rep.body = obj;
    return rep;
  }
  ++rv_;
  m["resourceVersion"] = absl::StrCat(rv_);
  Bucket(r)[Key(ns, name)] = obj;
  Emit(r, ns, "ADDED", obj, json());
  if (r.plural == "namespaces") {
    // The service-account controller's work.
    json sa;
    StoreNew(*FindResource("", "v1", "serviceaccounts"), name,
             json{{"metadata", {{"name", "default"}}}}, false, &sa);
  }
  *stored = obj;
  Reply rep;
  rep.code = 201;
  rep.body = obj;
  return rep;
}

Reply FakeApiServer::Impl::StoreUpdate(const Resource& r, const std::string& ns,
                                       const std::string& name,
                                       const std::string& sub, json obj,
                                       bool dry_run, json* stored) {
  json* cur = Find(r, ns, name);
  if (cur == nullptr) return NotFound(r, name);
  if (!obj.is_object()) return Err(400, "the body must be a JSON object");
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) {
    obj["metadata"] = json::object();
  }
  std::string body_name = MetaString(obj, "name");
  if (!body_name.empty() && body_name != name) {
    return Err(
        400, absl::StrCat("the name of the object (", body_name,
                          ") does not match the name on the URL (", name, ")"));
  }
  int64_t want = RvOf(obj);
  if (want < 0) return Err(400, "metadata.resourceVersion is not a number");
  if (want != 0 && want != RvOf(*cur)) return Conflict(r, name);
  json next = obj;
  const json& old = *cur;
  if (!sub.empty()) {
    // /status: only the status changes.
    next = old;
    next["status"] = obj.contains("status") ? obj["status"] : json::object();
  } else {
    // Immutable and server-owned metadata.
    for (const char* f :
         {"uid", "creationTimestamp", "namespace", "deletionTimestamp",
          "deletionGracePeriodSeconds", "generation"}) {
      if (old["metadata"].contains(f)) {
        next["metadata"][f] = old["metadata"][f];
      } else {
        next["metadata"].erase(f);
      }
    }
    next["metadata"]["name"] = name;
    if (r.has_status) {
      if (old.contains("status")) {
        next["status"] = old["status"];
      } else {
        next.erase("status");
      }
    }
    if (r.plural == "secrets") {
      std::string error;
      next = SecretWithStringData(std::move(next), &error);
      if (!error.empty()) return Invalid(r, name, {{"data", error}});
    }
    if (r.plural == "pods") {
      auto causes = ValidatePod(next);
      if (!causes.empty()) return Invalid(r, name, causes);
      if (MutablePodSpec(next["spec"]) != MutablePodSpec(old["spec"])) {
        return Invalid(
            r, name,
            {{"spec",
              "Forbidden: pod updates may not change fields other than "
              "`spec.containers[*].image`, `spec.initContainers[*].image`, "
              "`spec.activeDeadlineSeconds`, `spec.tolerations` (only "
              "additions to existing tolerations), "
              "`spec.terminationGracePeriodSeconds`"}});
      }
    }
    if (r.has_generation && old.contains("spec") &&
        next.value("spec", json()) != old["spec"]) {
      next["metadata"]["generation"] =
          old["metadata"].value("generation", 0) + 1;
    }
  }
  next["kind"] = r.kind;
  next["apiVersion"] = r.api_version();
  next["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"];
  if (next == old) {
    // No change: no new resourceVersion, no event (as the real server).
    *stored = old;
    Reply rep;
    rep.body = old;
    return rep;
  }
  if (dry_run) {
    *stored = next;
    Reply rep;
    rep.body = next;
    return rep;
  }
  ++rv_;
  next["metadata"]["resourceVersion"] = absl::StrCat(rv_);
  json prev = old;
  // A finalizer removed from an object being deleted may complete it.
  bool finish = next["metadata"].contains("deletionTimestamp") &&
                (!next["metadata"].contains("finalizers") ||
                 next["metadata"]["finalizers"].empty()) &&
                !(r.plural == "pods" &&
                  next["metadata"].value("deletionGracePeriodSeconds", 0) > 0);
  *cur = next;
  Emit(r, ns, "MODIFIED", next, prev);
  if (finish) Remove(r, ns, name);
  *stored = next;
  Reply rep;
  rep.body = next;
  return rep;
}

void FakeApiServer::Impl::Remove(const Resource& r, const std::string& ns,
                                 const std::string& name) {
  auto& b = Bucket(r);
  auto it = b.find(Key(ns, name));
  if (it == b.end()) return;
  json obj = std::move(it->second);
  b.erase(it);
  ++rv_;
  obj["metadata"]["resourceVersion"] = absl::StrCat(rv_);
  Emit(r, ns, "DELETED", obj, json());
  if (r.plural == "pods") {
    std::string prefix = LogKey(ns, name, "");
    for (auto l = logs_.lower_bound(prefix);
         l != logs_.end() && absl::StartsWith(l->first, prefix);) {
      l = logs_.erase(l);
    }
  }
  if (r.plural == "namespaces") RemoveNamespaceContents(name);
}

void FakeApiServer::Impl::RemoveNamespaceContents(const std::string& name) {
  for (const Resource& other : Resources()) {
    if (!other.namespaced) continue;
    std::vector<std::string> names;
    for (const auto& [k, v] : Bucket(other)) {
      if (absl::StartsWith(k, name + "/"))
        names.push_back(k.substr(name.size() + 1));
    }
    for (const std::string& n : names) Remove(other, name, n);
  }
}

void FakeApiServer::Impl::Emit(const Resource& r, const std::string& ns,
                               const std::string& type, const json& obj,
                               const json& old) {
  auto c = std::make_shared<Change>();
  c->rv = rv_;
  c->res = &r;
  c->ns = ns;
  c->type = type;
  c->object = obj;
  c->old = old;
  history_.push_back(c);
  while (history_.size() > opts_.history_limit) {
    compacted_rv_ = history_.front()->rv;
    history_.pop_front();
  }
  for (auto& w : watchers_) {
    if (w->res != &r || w->expired || w->dropped) continue;
    if (!w->ns.empty() && w->ns != ns) continue;
    if (w->queue.size() >= opts_.history_limit) {
      // A watcher this far behind is dropped as the real server does.
      w->expired = true;
      w->expired_rv = rv_;
      continue;
    }
    w->queue.push_back(c);
  }
}

bool FakeApiServer::Impl::WatcherSees(const Watcher& w, const json& obj) const {
  if (!obj.is_object()) return false;
  json labels = obj.contains("metadata") && obj["metadata"].contains("labels")
                    ? obj["metadata"]["labels"]
                    : json();
  return w.labels.Matches(labels) && w.fields.Matches(obj);
}

void FakeApiServer::Impl::AppendEvent(Watcher& w, const Change& c,
                                      std::string* out) const {
  bool now = WatcherSees(w, c.object);
  bool before = c.type == "MODIFIED" && WatcherSees(w, c.old);
  std::string type = c.type;
  if (c.type == "MODIFIED") {
    if (now && !before) type = "ADDED";
    if (!now && before) type = "DELETED";
    if (!now && !before) return;
  } else if (!now) {
    return;
  }
  json object = c.object;
  if (w.table) {
    object =
        ToTable(*c.res, {c.object},
                {{"resourceVersion", MetaString(c.object, "resourceVersion")}},
                !w.table_columns_sent, w.include_object);
    w.table_columns_sent = true;
  }
  json ev = {{"type", type}, {"object", object}};
  absl::StrAppend(out, ev.dump(), "\n");
}

// ---- Verbs. ----
Reply FakeApiServer::Impl::Get(const Target& t) {
  MutexLock l(&mu_);
  if (t.res->namespaced && t.ns.empty()) {
    return Err(404, "the server could not find the requested resource");
  }
  json* o = Find(*t.res, t.ns, t.name);
  if (o == nullptr) return NotFound(*t.res, t.name);
  Reply rep;
  rep.body = *o;
  return rep;
}

Reply FakeApiServer::Impl::List(const Target& t, const Request& r) {
  absl::StatusOr<LabelSelector> ls =
      LabelSelector::Parse(r.param("labelSelector"));
  if (!ls.ok()) return Err(400, std::string(ls.status().message()));
  absl::StatusOr<FieldSelector> fs =
      FieldSelector::Parse(r.param("fieldSelector"), SupportedFields(*t.res));
  if (!fs.ok()) return Err(400, std::string(fs.status().message()));
  int64_t limit = 0;
  if (!r.param("limit").empty() &&
      !absl::SimpleAtoi(r.param("limit"), &limit)) {
    return Err(400, "limit must be a number");
  }
  std::string start;
  MutexLock l(&mu_);
  if (!r.param("continue").empty()) {
    std::string raw;
    json tok;
    if (absl::WebSafeBase64Unescape(r.param("continue"), &raw)) {
      tok = json::parse(raw, nullptr, false);
    }
    if (!tok.is_object() || !tok.contains("rv") || !tok.contains("start")) {
      return Err(400, "invalid continue token");
    }
    if (tok["rv"].get<int64_t>() < compacted_rv_) {
      return Err(410,
                 "The provided continue parameter is too old to display a "
                 "consistent list result. You can start a new list without "
                 "the continue parameter.",
                 "Expired");
    }
    start = tok["start"].get<std::string>();
  }
  std::string rv_match = r.param("resourceVersionMatch");
  if (rv_match == "Exact") {
    int64_t want = 0;
    if (!absl::SimpleAtoi(r.param("resourceVersion"), &want)) {
      return Err(400, "resourceVersionMatch=Exact needs a resourceVersion");
    }
    if (want != rv_) {
      return Expired(want, compacted_rv_ + 1);
    }
  }
  Watcher w;
  w.labels = *ls;
  w.fields = *fs;
  json items = json::array();
  std::string cont;
  for (const auto& [k, v] : Bucket(*t.res)) {
    if (t.res->namespaced && !t.ns.empty() &&
        !absl::StartsWith(k, t.ns + "/")) {
      continue;
    }
    if (!start.empty() && k <= start) continue;
    if (!WatcherSees(w, v)) continue;
    if (limit > 0 && static_cast<int64_t>(items.size()) == limit) {
      json tok = {{"rv", rv_}, {"start", start}};
      cont = absl::WebSafeBase64Escape(tok.dump());
      break;
    }
    json item = v;
    item.erase("kind");
    item.erase("apiVersion");
    items.push_back(std::move(item));
    start = k;
  }
  Reply rep;
  json meta = {{"resourceVersion", absl::StrCat(rv_)}};
  if (!cont.empty()) meta["continue"] = cont;
  rep.body = {{"kind", t.res->kind + "List"},
              {"apiVersion", t.res->api_version()},
              {"metadata", meta},
              {"items", items}};
  return rep;
}

Reply FakeApiServer::Impl::Watch(const Target& t, const Request& r,
                                 httplib::Response& res, bool* streamed) {
  absl::StatusOr<LabelSelector> ls =
      LabelSelector::Parse(r.param("labelSelector"));
  if (!ls.ok()) return Err(400, std::string(ls.status().message()));
  absl::StatusOr<FieldSelector> fs =
      FieldSelector::Parse(r.param("fieldSelector"), SupportedFields(*t.res));
  if (!fs.ok()) return Err(400, std::string(fs.status().message()));
  absl::Duration timeout = opts_.default_watch_timeout;
  if (!r.param("timeoutSeconds").empty()) {
    int64_t s;
    if (!absl::SimpleAtoi(r.param("timeoutSeconds"), &s) || s < 0) {
      return Err(400, "timeoutSeconds must be a non-negative number");
    }
    if (s > 0) timeout = absl::Seconds(s);
  }
  if (r.flag("sendInitialEvents")) {
    return Err(422,
               "sendInitialEvents (watch-list) is not supported by the "
               "double");
  }
  std::string rv_text = r.param("resourceVersion");
  int64_t from = 0;
  if (!rv_text.empty() && !absl::SimpleAtoi(rv_text, &from)) {
    return Err(400, absl::StrCat("invalid resourceVersion \"", rv_text, "\""));
  }
  auto w = std::make_shared<Watcher>();
  w->res = t.res;
  w->ns = t.ns;
  w->labels = *ls;
  w->fields = *fs;
  w->bookmarks = r.flag("allowWatchBookmarks");
  w->table = WantsTable(*r.http);
  w->include_object = r.param("includeObject");
  w->deadline = absl::Now() + timeout;
  w->next_bookmark = absl::Now() + opts_.bookmark_interval;
  {
    MutexLock l(&mu_);
    if (from == 0) {
      // From "now": the current objects as ADDED, then changes.
      for (const auto& [k, v] : Bucket(*t.res)) {
        if (!t.ns.empty() && !absl::StartsWith(k, t.ns + "/")) continue;
        auto c = std::make_shared<Change>();
        c->rv = rv_;
        c->res = t.res;
        c->ns = MetaString(v, "namespace");
        c->type = "ADDED";
        c->object = v;
        w->queue.push_back(c);
      }
    } else if (from < compacted_rv_ ||
               (!history_.empty() && from < history_.front()->rv - 1 &&
                from < compacted_rv_)) {
      w->expired = true;
      w->expired_rv = from;
    } else {
      for (const auto& c : history_) {
        if (c->rv <= from || c->res != t.res) continue;
        if (!t.ns.empty() && c->ns != t.ns) continue;
        w->queue.push_back(c);
      }
    }
    watchers_.push_back(w);
  }
  *streamed = true;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache, private");
  res.set_chunked_content_provider(
      "application/json",
      [this, w](size_t, httplib::DataSink& sink) {
        std::string out;
        enum { kMore, kDone, kDrop } next = kMore;
        {
          MutexLock l(&mu_);
          absl::Time wake = w->deadline;
          if (w->bookmarks) wake = std::min(wake, w->next_bookmark);
          mu_.AwaitWithDeadline(
              [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return stopping_ || w->dropped || w->expired ||
                       !w->queue.empty();
              },
              wake);
          if (stopping_) {
            next = kDone;
          } else if (w->dropped) {
            next = kDrop;
          } else {
            while (!w->queue.empty()) {
              AppendEvent(*w, *w->queue.front(), &out);
              w->queue.pop_front();
            }
            absl::Time now = absl::Now();
            if (w->expired) {
              json ev = {
                  {"type", "ERROR"},
                  {"object", Expired(w->expired_rv, compacted_rv_ + 1).body}};
              absl::StrAppend(&out, ev.dump(), "\n");
              next = kDone;
            } else if (now >= w->deadline) {
              next = kDone;
            } else if (w->bookmarks && now >= w->next_bookmark) {
              json ev = {
                  {"type", "BOOKMARK"},
                  {"object",
                   {{"kind", w->res->kind},
                    {"apiVersion", w->res->api_version()},
                    {"metadata", {{"resourceVersion", absl::StrCat(rv_)}}}}}};
              absl::StrAppend(&out, ev.dump(), "\n");
              w->next_bookmark = now + opts_.bookmark_interval;
            }
          }
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (next == kDrop) return false;
        if (next == kDone) sink.done();
        return true;
      },
      [this, w](bool) {
        MutexLock l(&mu_);
        watchers_.remove(w);
      });
  return Reply();
}

Reply FakeApiServer::Impl::Create(const Target& t, json obj, bool dry_run,
                                  const std::string& manager) {
  json stored;
  Reply rep;
  std::function<void(const json&)> hook;
  {
    MutexLock l(&mu_);
    TrackUpdate(json(), &obj, manager, t.res->api_version(), absl::Now());
    rep = StoreNew(*t.res, t.ns, std::move(obj), dry_run, &stored);
    if (rep.code < 300 && !dry_run && t.res->plural == "pods") {
      hook = hooks_.on_pod_created;
    }
  }
  if (hook) hook(stored);
  return rep;
}

Reply FakeApiServer::Impl::Update(const Target& t, json obj, bool dry_run,
                                  const std::string& manager) {
  json stored;
  MutexLock l(&mu_);
  if (const json* cur = Find(*t.res, t.ns, t.name); cur && t.sub.empty()) {
    TrackUpdate(*cur, &obj, manager, t.res->api_version(), absl::Now());
  }
  return StoreUpdate(*t.res, t.ns, t.name, t.sub, std::move(obj), dry_run,
                     &stored);
}

Reply FakeApiServer::Impl::Patch(const Target& t,
                                 const std::string& content_type,
                                 const json& patch, bool dry_run,
                                 const std::string& manager) {
  std::string ct(absl::StripAsciiWhitespace(
      std::string(content_type.substr(0, content_type.find(';')))));
  MutexLock l(&mu_);
  json* cur = Find(*t.res, t.ns, t.name);
  if (cur == nullptr) return NotFound(*t.res, t.name);
  absl::StatusOr<json> next;
  if (ct == "application/merge-patch+json") {
    next = ApplyMergePatch(*cur, patch);
  } else if (ct == "application/strategic-merge-patch+json") {
    next = ApplyStrategicMergePatch(*cur, patch);
  } else if (ct == "application/json-patch+json") {
    next = ApplyJsonPatch(*cur, patch);
  } else {
    return Err(415,
               absl::StrCat("the double does not support patch type \"", ct,
                            "\" (merge, strategic-merge and json-patch are "
                            "supported)"));
  }
  if (!next.ok()) return Err(422, std::string(next.status().message()));
  json body = *next;
  // A patch carrying a resourceVersion is a precondition; one without is
  // applied to the current object.
  if (RvOf(body) != RvOf(*cur)) {
    if (RvOf(body) > 0) return Conflict(*t.res, t.name);
  }
  body["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
  if (t.sub.empty()) {
    TrackUpdate(*cur, &body, manager, t.res->api_version(), absl::Now());
  }
  json stored;
  return StoreUpdate(*t.res, t.ns, t.name, t.sub, std::move(body), dry_run,
                     &stored);
}

Reply FakeApiServer::Impl::ApplyPatch(const Target& t, const json& applied,
                                      bool dry_run, const std::string& manager,
                                      bool force) {
  if (manager.empty()) {
    return Err(400,
               "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
               "Required value: is required for apply patch",
               "BadRequest");
  }
  if (!t.sub.empty()) return Err(405, "apply to a subresource");
  if (!applied.is_object()) return Err(400, "the apply body must be an object");
  std::string kind = applied.value("kind", "");
  std::string av = applied.value("apiVersion", "");
  if (kind != t.res->kind || av != t.res->api_version()) {
    return Err(400, absl::StrCat("the API version in the data (", av, " ", kind,
                                 ") does not match the expected API version (",
                                 t.res->api_version(), " ", t.res->kind, ")"));
  }
  if (MetaString(applied, "name") != t.name) {
    return Err(400, absl::StrCat(
                        "the name of the object (", MetaString(applied, "name"),
                        ") does not match the name on the URL (", t.name, ")"));
  }
  json cur_copy;
  {
    MutexLock l(&mu_);
    if (const json* cur = Find(*t.res, t.ns, t.name)) cur_copy = *cur;
  }
  ApplyResult a = ServerSideApply(cur_copy, applied, manager, force,
                                  t.res->api_version(), absl::Now());
  if (a.code == 409) {
    return Err(409, a.message, "Conflict",
               json{{"name", t.name},
                    {"group", t.res->group},
                    {"kind", t.res->plural},
                    {"causes", a.causes}});
  }
  if (a.code != 200) return Err(a.code, a.message);
  if (cur_copy.is_null()) {
    return Create(t, std::move(a.object), dry_run, "");
  }
  MutexLock l(&mu_);
  json* cur = Find(*t.res, t.ns, t.name);
  if (cur == nullptr || (*cur)["metadata"]["resourceVersion"] !=
                            cur_copy["metadata"]["resourceVersion"]) {
    return Err(409,
               "Operation cannot be fulfilled: the object changed during "
               "the apply; retry",
               "Conflict");
  }
  json stored;
  return StoreUpdate(*t.res, t.ns, t.name, "", std::move(a.object), dry_run,
                     &stored);
}

Reply FakeApiServer::Impl::Delete(const Target& t, const Request& r,
                                  const json& options) {
  std::optional<int64_t> grace;
  if (!r.param("gracePeriodSeconds").empty()) {
    int64_t g;
    if (!absl::SimpleAtoi(r.param("gracePeriodSeconds"), &g)) {
      return Err(400, "gracePeriodSeconds must be a number");
    }
    grace = g;
  }
  if (options.is_object() && options.contains("gracePeriodSeconds") &&
      options["gracePeriodSeconds"].is_number_integer()) {
    grace = options["gracePeriodSeconds"].get<int64_t>();
  }
  std::function<void(const json&)> hook;
  json marked;
  Reply rep;
  {
    MutexLock l(&mu_);
    json* cur = Find(*t.res, t.ns, t.name);
    if (cur == nullptr) return NotFound(*t.res, t.name);
    if (options.is_object() && options.contains("preconditions")) {
      const json& pre = options["preconditions"];
      if (pre.contains("uid") && pre["uid"] != (*cur)["metadata"]["uid"]) {
        return Err(409,
                   "Precondition failed: UID in precondition does not "
                   "match the object's",
                   "Conflict");
      }
      if (pre.contains("resourceVersion") &&
          pre["resourceVersion"] != (*cur)["metadata"]["resourceVersion"]) {
        return Conflict(*t.res, t.name);
      }
    }
    if (t.res->plural == "namespaces" &&
        opts_.namespace_termination > absl::ZeroDuration()) {
      // The namespace controller's work: Terminating, content deleted,
      // gone later (namespace_lifecycle.h).
      if (!IsNamespaceTerminating(*cur)) {
        json prev = *cur;
        MarkNamespaceTerminating(*cur, absl::Now());
        ++rv_;
        (*cur)["metadata"]["resourceVersion"] = absl::StrCat(rv_);
        Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
        RemoveNamespaceContents(t.name);
        reaper_->Schedule(t.name);
      }
      rep.body = *cur;
      return rep;
    }
    json& meta = (*cur)["metadata"];
    bool is_pod = t.res->plural == "pods";
    bool has_finalizers =
        meta.contains("finalizers") && !meta["finalizers"].empty();
    int64_t g = 0;
    if (is_pod) {
      g = grace.value_or(
          (*cur)["spec"].value("terminationGracePeriodSeconds", 30));
      std::string phase = (*cur)["status"].value("phase", "");
      if ((*cur)["spec"].value("nodeName", "").empty() ||
          phase == "Succeeded" || phase == "Failed" ||
          !hooks_.on_pod_deleting) {
        g = 0;
      }
    }
    bool already = meta.contains("deletionTimestamp");
    if (is_pod && g > 0 && !already) {
      json prev = *cur;
      meta["deletionTimestamp"] =
          FormatTimeSeconds(absl::Now() + absl::Seconds(g));
      meta["deletionGracePeriodSeconds"] = g;
      ++rv_;
      meta["resourceVersion"] = absl::StrCat(rv_);
      Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
      marked = *cur;
      hook = hooks_.on_pod_deleting;
      rep.body = *cur;
    } else if (is_pod && g > 0 && already) {
      rep.body = *cur;  // deletion already in progress
    } else if (has_finalizers) {
      if (!already) {
        json prev = *cur;
        meta["deletionTimestamp"] = FormatTimeSeconds(absl::Now());
        meta["deletionGracePeriodSeconds"] = 0;
        ++rv_;
        meta["resourceVersion"] = absl::StrCat(rv_);
        Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
      }
      rep.body = *cur;
    } else {
      json obj = *cur;
      Remove(*t.res, t.ns, t.name);
      if (is_pod) {
        rep.body = obj;
      } else {
        rep.body = {{"kind", "Status"},
                    {"apiVersion", "v1"},
                    {"metadata", json::object()},
                    {"status", "Success"},
                    {"details",
                     {{"name", t.name},
                      {"group", t.res->group},
                      {"kind", t.res->plural},
                      {"uid", obj["metadata"]["uid"]}}}};
      }
    }
  }
  if (hook) hook(marked);
  return rep;
}

// ---- Logs. ----
Reply FakeApiServer::Impl::Logs(const Target& t, const Request& r,
                                httplib::Response& res, bool* streamed) {
  std::string container = r.param("container");
  bool follow = r.flag("follow");
  bool timestamps = r.flag("timestamps");
  bool previous = r.flag("previous");
  std::optional<absl::Time> since;
  if (!r.param("sinceTime").empty()) {
    absl::StatusOr<absl::Time> st = ParseTime(r.param("sinceTime"));
    if (!st.ok()) return Err(400, std::string(st.status().message()));
    // The kubelet gets sinceTime in whole seconds.
    since = absl::FromUnixSeconds(absl::ToUnixSeconds(*st));
  }
  if (!r.param("sinceSeconds").empty()) {
    int64_t s;
    if (!absl::SimpleAtoi(r.param("sinceSeconds"), &s) || s < 1) {
      return Err(422, "sinceSeconds must be a positive number");
    }
    if (since.has_value()) {
      return Err(422, "at most one of sinceTime or sinceSeconds may be given");
    }
    since = absl::Now() - absl::Seconds(s);
  }
  int64_t tail = -1, limit_bytes = -1;
  if (!r.param("tailLines").empty() &&
      (!absl::SimpleAtoi(r.param("tailLines"), &tail) || tail < 0)) {
    return Err(422, "tailLines must be a non-negative number");
  }
  if (!r.param("limitBytes").empty() &&
      (!absl::SimpleAtoi(r.param("limitBytes"), &limit_bytes) ||
       limit_bytes < 1)) {
    return Err(422, "limitBytes must be a positive number");
  }
  std::string key, uid;
  size_t next_line = 0;
  int64_t drop_gen;
  std::string text;
  bool done_now = false;
  auto format = [timestamps](const LogLine& l) {
    return timestamps ? absl::StrCat(FormatTimeNano(l.time), " ", l.text, "\n")
                      : absl::StrCat(l.text, "\n");
  };
  {
    MutexLock l(&mu_);
    json* pod = Find(*t.res, t.ns, t.name);
    if (pod == nullptr) return NotFound(*t.res, t.name);
    uid = (*pod)["metadata"].value("uid", "");
    std::vector<std::string> names;
    for (const char* list : {"containers", "initContainers"}) {
      if (!(*pod)["spec"].contains(list)) continue;
      for (const json& c : (*pod)["spec"][list])
        names.push_back(c.value("name", ""));
    }
    if (container.empty()) {
      size_t main = (*pod)["spec"]["containers"].size();
      std::string ann = (*pod)["metadata"].contains("annotations")
                            ? (*pod)["metadata"]["annotations"].value(
                                  "kubectl.kubernetes.io/default-container", "")
                            : "";
      if (!ann.empty()) {
        container = ann;
      } else if (main == 1) {
        container = names[0];
      } else {
        return Err(400, absl::StrCat("a container name must be specified for "
                                     "pod ",
                                     t.name, ", choose one of: [",
                                     absl::StrJoin(names, " "), "]"));
      }
    }
    if (std::find(names.begin(), names.end(), container) == names.end()) {
      return Err(400, absl::StrCat("container ", container,
                                   " is not valid for pod ", t.name));
    }
    if (previous) {
      return Err(400,
                 absl::StrCat("previous terminated container \"", container,
                              "\" in pod \"", t.name, "\" not found"));
    }
    key = LogKey(t.ns, t.name, container);
    auto lb = logs_.find(key);
    if (lb == logs_.end()) {
      // Started per the pod's status?
      std::string waiting = "ContainerCreating";
      bool started = false;
      const json& st = (*pod)["status"];
      for (const char* list : {"containerStatuses", "initContainerStatuses"}) {
        if (!st.contains(list)) continue;
        for (const json& cs : st[list]) {
          if (cs.value("name", "") != container || !cs.contains("state"))
            continue;
          if (cs["state"].contains("running") ||
              cs["state"].contains("terminated")) {
            started = true;
          } else if (cs["state"].contains("waiting")) {
            waiting = cs["state"]["waiting"].value("reason", waiting);
          }
        }
      }
      if (!started) {
        return Err(
            400, absl::StrCat("container \"", container, "\" in pod \"", t.name,
                              "\" is waiting to start: ", waiting));
      }
      logs_[key];  // started, no output yet
      lb = logs_.find(key);
    }
    const std::vector<LogLine>& lines = lb->second.lines;
    size_t first = 0;
    if (since.has_value()) {
      while (first < lines.size() && lines[first].time < *since) ++first;
    }
    if (tail >= 0 && lines.size() - first > static_cast<size_t>(tail)) {
      first = lines.size() - static_cast<size_t>(tail);
    }
    for (size_t i = first; i < lines.size(); ++i) text += format(lines[i]);
    next_line = lines.size();
    drop_gen = log_drop_gen_;
    done_now = !follow || lb->second.ended;
  }
  if (limit_bytes > 0 && static_cast<int64_t>(text.size()) >= limit_bytes) {
    text.resize(static_cast<size_t>(limit_bytes));
    done_now = true;
  }
  *streamed = true;
  res.status = 200;
  if (done_now) {
    res.set_content(text, "text/plain");
    return Reply();
  }
  struct State {
    std::string pending;
    size_t next_line;
    int64_t bytes_left;
  };
  auto st = std::make_shared<State>();
  st->pending = std::move(text);
  st->next_line = next_line;
  st->bytes_left = limit_bytes > 0 ? limit_bytes : -1;
  std::string ns = t.ns, pod_name = t.name;
  res.set_chunked_content_provider(
      "text/plain", [this, st, key, uid, ns, pod_name, drop_gen, since, format](
                        size_t, httplib::DataSink& sink) {
        std::string out = std::move(st->pending);
        st->pending.clear();
        bool done = false, drop = false;
        if (out.empty()) {
          MutexLock l(&mu_);
          auto has_more = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
            if (stopping_ || log_drop_gen_ != drop_gen) return true;
            auto lb = logs_.find(key);
            return lb == logs_.end() || lb->second.ended ||
                   lb->second.lines.size() > st->next_line;
          };
          mu_.AwaitWithDeadline(has_more, absl::Now() + absl::Seconds(1));
          if (log_drop_gen_ != drop_gen) {
            drop = true;
          } else {
            auto lb = logs_.find(key);
            json* pod = Find(PodsResource(), ns, pod_name);
            bool gone = lb == logs_.end() || pod == nullptr ||
                        (*pod)["metadata"].value("uid", "") != uid;
            if (!gone) {
              const auto& lines = lb->second.lines;
              for (; st->next_line < lines.size(); ++st->next_line) {
                const LogLine& ln = lines[st->next_line];
                if (since.has_value() && ln.time < *since) continue;
                out += format(ln);
              }
            }
            done = stopping_ || gone || lb->second.ended;
          }
        }
        if (drop) return false;
        if (st->bytes_left >= 0) {
          if (static_cast<int64_t>(out.size()) >= st->bytes_left) {
            out.resize(static_cast<size_t>(st->bytes_left));
            done = true;
          }
          st->bytes_left -= static_cast<int64_t>(out.size());
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (done) sink.done();
        return true;
      });
  return Reply();
}

// ---- In-process access. ----
absl::StatusOr<json> FakeApiServer::Impl::GetObject(
    const std::string& api_path) {
  Target t;
  std::string why;
  if (!ParseTarget(api_path, &t, &why) || t.name.empty() || !t.sub.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an object path: ", api_path, " ", why));
  }
  Reply r = Get(t);
  if (r.code == 404) {
    return absl::NotFoundError(r.body.value("message", api_path));
  }
  if (r.code != 200) {
    return absl::InvalidArgumentError(r.body.value("message", api_path));
  }
  return r.body;
}

absl::Status FakeApiServer::Impl::MutatePod(
    const std::string& ns, const std::string& name,
    const std::function<void(json&)>& fn) {
  MutexLock l(&mu_);
  const Resource& r = PodsResource();
  json* cur = Find(r, ns, name);
  if (cur == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("pods \"", name, "\" not found in ", ns));
  }
  json prev = *cur;
  fn(*cur);
  json& meta = (*cur)["metadata"];
  for (const char* f : {"name", "namespace", "uid", "creationTimestamp"}) {
    meta[f] = prev["metadata"][f];
  }
  (*cur)["kind"] = "Pod";
  (*cur)["apiVersion"] = "v1";
  ++rv_;
  meta["resourceVersion"] = absl::StrCat(rv_);
  Emit(r, ns, "MODIFIED", *cur, prev);
  return absl::OkStatus();
}

// ---- In-process access for simulated controllers. ----
absl::StatusOr<std::vector<json>> FakeApiServer::Impl::ListObjects(
    const std::string& path) {
  Target t;
  std::string why;
  if (!ParseTarget(path, &t, &why) || !t.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a collection path: ", path, " ", why));
  }
  MutexLock l(&mu_);
  std::vector<json> out;
  for (const auto& [key, obj] : Bucket(*t.res)) {
    if (!t.ns.empty() && MetaString(obj, "namespace") != t.ns) continue;
    out.push_back(obj);
  }
  return out;
}

absl::Status FakeApiServer::Impl::MutateObject(
    const std::string& api_path, const std::function<void(json&)>& fn) {
  Target t;
  std::string why;
  if (!ParseTarget(api_path, &t, &why) || t.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an object path: ", api_path, " ", why));
  }
  MutexLock l(&mu_);
  json* cur = Find(*t.res, t.ns, t.name);
  if (cur == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(t.res->plural, " \"", t.name, "\" not found in ", t.ns));
  }
  json prev = *cur;
  fn(*cur);
  json& meta = (*cur)["metadata"];
  for (const char* f : {"name", "namespace", "uid", "creationTimestamp",
                        "resourceVersion", "generation"}) {
    if (prev["metadata"].contains(f)) meta[f] = prev["metadata"][f];
  }
  (*cur)["kind"] = t.res->kind;
  (*cur)["apiVersion"] = t.res->api_version();
  if (*cur == prev) return absl::OkStatus();
  ++rv_;
  meta["resourceVersion"] = absl::StrCat(rv_);
  Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
  return absl::OkStatus();
}

absl::StatusOr<json> FakeApiServer::Impl::CreateObject(const std::string& path,
                                                       json object) {
  Target t;
  std::string why;
  if (!ParseTarget(path, &t, &why) || !t.name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a collection path: ", path, " ", why));
  }
  Reply r = Create(t, std::move(object), false, "");
  if (r.code >= 300) {
    return absl::FailedPreconditionError(r.body.value("message", path));
  }
  return r.body;
}

void FakeApiServer::Impl::RecordObjectEvent(const json& object,
                                            const std::string& type,
                                            const std::string& reason,
                                            const std::string& message,
                                            const std::string& component) {
  std::string ns = MetaString(object, "namespace");
  std::string name = MetaString(object, "name");
  std::string now = FormatTimeSeconds(absl::Now());
  MutexLock l(&mu_);
  json ev = {
      {"metadata",
       {{"name",
         absl::StrFormat("%s.%x", name,
                         absl::ToUnixNanos(absl::Now()) + ++event_seq_)}}},
      {"involvedObject",
       {{"kind", object.value("kind", "")},
        {"namespace", ns},
        {"name", name},
        {"uid", MetaString(object, "uid")},
        {"apiVersion", object.value("apiVersion", "")}}},
      {"reason", reason},
      {"message", message},
      {"type", type},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", {{"component", component}}},
      {"reportingComponent", component},
  };
  json stored;
  StoreNew(*FindResource("", "v1", "events"), ns, ev, false, &stored);
}

void FakeApiServer::Impl::AppendLog(const std::string& ns,
                                    const std::string& pod,
                                    const std::string& container,
                                    absl::string_view line, absl::Time time) {
  MutexLock l(&mu_);
  if (Find(PodsResource(), ns, pod) == nullptr) return;
  LogBuf& b = logs_[LogKey(ns, pod, container)];
  b.lines.push_back({time, std::string(line)});
}

void FakeApiServer::Impl::EndLog(const std::string& ns, const std::string& pod,
                                 const std::string& container) {
  MutexLock l(&mu_);
  if (Find(PodsResource(), ns, pod) == nullptr) return;
  logs_[LogKey(ns, pod, container)].ended = true;
}

void FakeApiServer::Impl::RecordEvent(const std::string& ns,
                                      const std::string& pod,
                                      const std::string& type,
                                      const std::string& reason,
                                      const std::string& message) {
  MutexLock l(&mu_);
  json* p = Find(PodsResource(), ns, pod);
  std::string uid = p == nullptr ? "" : (*p)["metadata"].value("uid", "");
  std::string now = FormatTimeSeconds(absl::Now());
  json ev = {
      {"metadata",
       {{"name",
         absl::StrFormat("%s.%x", pod,
                         absl::ToUnixNanos(absl::Now()) + ++event_seq_)}}},
      {"involvedObject",
       {{"kind", "Pod"},
        {"namespace", ns},
        {"name", pod},
        {"uid", uid},
        {"apiVersion", "v1"}}},
      {"reason", reason},
      {"message", message},
      {"type", type},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", {{"component", "kubelet"}}},
      {"reportingComponent", "kubelet"},
  };
  json stored;
  StoreNew(*FindResource("", "v1", "events"), ns, ev, false, &stored);
}

absl::Status FakeApiServer::Impl::FinalizePodDeletion(const std::string& ns,
                                                      const std::string& name) {
  MutexLock l(&mu_);
  const Resource& r = PodsResource();
  json* cur = Find(r, ns, name);
  if (cur == nullptr) {
    return absl::NotFoundError(absl::StrCat("pods \"", name, "\" not found"));
  }
  json& meta = (*cur)["metadata"];
  if (!meta.contains("deletionTimestamp")) {
    return absl::FailedPreconditionError(
        absl::StrCat("pod ", ns, "/", name, " is not being deleted"));
  }
  if (meta.contains("finalizers") && !meta["finalizers"].empty()) {
    json prev = *cur;
    meta["deletionGracePeriodSeconds"] = 0;
    ++rv_;
    meta["resourceVersion"] = absl::StrCat(rv_);
    Emit(r, ns, "MODIFIED", *cur, prev);
    return absl::OkStatus();
  }
  Remove(r, ns, name);
  return absl::OkStatus();
}

void FakeApiServer::Impl::InjectFault(const std::string& method,
                                      const std::string& path_regex, int code,
                                      int count, int retry_after_seconds) {
  Fault f;
  f.method = method;
  f.path = std::make_unique<RE2>(path_regex);
  f.code = code;
  f.count = count;
  f.retry_after = retry_after_seconds;
  MutexLock l(&mu_);
  faults_.push_back(std::move(f));
}

void FakeApiServer::Impl::DropWatches() {
  MutexLock l(&mu_);
  for (auto& w : watchers_) w->dropped = true;
}

void FakeApiServer::Impl::DropLogStreams() {
  MutexLock l(&mu_);
  ++log_drop_gen_;
}

void FakeApiServer::Impl::CompactHistory() {
  MutexLock l(&mu_);
  compacted_rv_ = rv_;
  history_.clear();
}

void FakeApiServer::Impl::ExpireWatches() {
  MutexLock l(&mu_);
  for (auto& w : watchers_) {
    w->expired = true;
    w->expired_rv = rv_;
  }
}

absl::Status FakeApiServer::Impl::WriteKubeconfig(const std::string& path,
                                                  const std::string& ns) const {
  std::string token =
      opts_.bearer_token.empty() ? "kiln-double-token" : opts_.bearer_token;
  std::string text = absl::StrCat(
      "apiVersion: v1\n"
      "kind: Config\n"
      "clusters:\n"
      "- name: fake\n"
      "  cluster:\n"
      "    server: ",
      url(),
      "\n"
      "users:\n"
      "- name: fake\n"
      "  user:\n"
      "    token: ",
      token,
      "\n"
      "contexts:\n"
      "- name: fake\n"
      "  context:\n"
      "    cluster: fake\n"
      "    user: fake\n"
      "    namespace: ",
      ns.empty() ? "default" : ns,
      "\n"
      "current-context: fake\n");
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// ---- The public face. ----
absl::StatusOr<std::unique_ptr<FakeApiServer>> FakeApiServer::Start(
    FakeApiServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<FakeApiServer>(new FakeApiServer(std::move(impl)));
}

FakeApiServer::FakeApiServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
FakeApiServer::~FakeApiServer() { impl_->Stop(); }
std::string FakeApiServer::url() const { return impl_->url(); }
absl::Status FakeApiServer::WriteKubeconfig(const std::string& path,
                                            const std::string& ns) const {
  return impl_->WriteKubeconfig(path, ns);
}
absl::StatusOr<json> FakeApiServer::GetObject(
    const std::string& api_path) const {
  return impl_->GetObject(api_path);
}
absl::Status FakeApiServer::MutatePod(const std::string& ns,
                                      const std::string& name,
                                      const std::function<void(json&)>& fn) {
  return impl_->MutatePod(ns, name, fn);
}
void FakeApiServer::AppendLog(const std::string& ns, const std::string& pod,
                              const std::string& container,
                              absl::string_view line, absl::Time time) {
  impl_->AppendLog(ns, pod, container, line, time);
}
void FakeApiServer::EndLog(const std::string& ns, const std::string& pod,
                           const std::string& container) {
  impl_->EndLog(ns, pod, container);
}
absl::StatusOr<std::vector<json>> FakeApiServer::ListObjects(
    const std::string& collection_path) const {
  return impl_->ListObjects(collection_path);
}
absl::Status FakeApiServer::MutateObject(const std::string& api_path,
                                         const std::function<void(json&)>& fn) {
  return impl_->MutateObject(api_path, fn);
}
absl::StatusOr<json> FakeApiServer::CreateObject(
    const std::string& collection_path, json object) {
  return impl_->CreateObject(collection_path, std::move(object));
}
void FakeApiServer::RecordObjectEvent(const json& object,
                                      const std::string& type,
                                      const std::string& reason,
                                      const std::string& message,
                                      const std::string& component) {
  impl_->RecordObjectEvent(object, type, reason, message, component);
}
void FakeApiServer::RecordEvent(const std::string& ns, const std::string& pod,
                                const std::string& type,
                                const std::string& reason,
                                const std::string& message) {
  impl_->RecordEvent(ns, pod, type, reason, message);
}
void FakeApiServer::SetKubelet(KubeletHooks hooks) {
  impl_->SetKubelet(std::move(hooks));
}
absl::Status FakeApiServer::FinalizePodDeletion(const std::string& ns,
                                                const std::string& name) {
  return impl_->FinalizePodDeletion(ns, name);
}
void FakeApiServer::InjectFault(const std::string& method,
                                const std::string& path_regex, int code,
                                int count, int retry_after_seconds) {
  impl_->InjectFault(method, path_regex, code, count, retry_after_seconds);
}
void FakeApiServer::DropWatches() { impl_->DropWatches(); }
void FakeApiServer::DropLogStreams() { impl_->DropLogStreams(); }
void FakeApiServer::CompactHistory() { impl_->CompactHistory(); }
void FakeApiServer::ExpireWatches() { impl_->ExpireWatches(); }
int64_t FakeApiServer::request_count() const { return impl_->request_count(); }
std::map<std::string, int64_t> FakeApiServer::request_counts() const {
  return impl_->request_counts();
}
int64_t FakeApiServer::resource_version() const {
  return impl_->resource_version();
}

}  // namespace testing
}  // namespace kube
}  // namespace kiln
