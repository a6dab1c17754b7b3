// The API server double's HTTP serving: connections, routing, discovery,
// faults, its kubeconfig and the public face.
#include "kube/testing/fake_api_server.h"

#include <fstream>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "kube/testing/api_tables.h"
#include "kube/testing/fake_api_server_impl.h"
#include "kube/testing/openapi.h"
#include "kube/testing/server_side_apply.h"

namespace kiln::kube::testing {

using fake_api::ApiGroups;
using fake_api::Err;
using fake_api::Expired;
using fake_api::Invalid;
using fake_api::IsApplyPatch;
using fake_api::MetaString;
using fake_api::NamespacesResource;
using fake_api::ParseTarget;
using fake_api::RequestKind;
using fake_api::Resources;
using fake_api::StatusJson;
using fake_api::ToTable;
using fake_api::WantsTable;

namespace {

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

}  // namespace

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

}  // namespace kiln::kube::testing
