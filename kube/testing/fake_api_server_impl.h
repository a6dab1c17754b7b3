// FakeApiServer::Impl, the API server double's state and the members
// each of its files defines: fake_api_server.cc (HTTP serving, routing,
// discovery, faults, the public face), object_store.cc (storage,
// resourceVersions, watch events, in-process object access), api_verbs.cc
// (get, list, watch, create, update, patch, apply, delete), pods.cc (logs,
// events, the kubelet hooks). Internal to //kube/testing:fake_api_server:
// the using-declarations below are for those files only.
#ifndef KILN_KUBE_TESTING_FAKE_API_SERVER_IMPL_H_
#define KILN_KUBE_TESTING_FAKE_API_SERVER_IMPL_H_

#include <httplib.h>

#include <atomic>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "kube/testing/api_objects.h"
#include "kube/testing/api_protocol.h"
#include "kube/testing/api_resources.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/namespace_lifecycle.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace kiln::kube::testing {

using fake_api::Reply;
using fake_api::Resource;
using fake_api::Target;
using nlohmann::json;

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

}  // namespace kiln::kube::testing

#endif  // KILN_KUBE_TESTING_FAKE_API_SERVER_IMPL_H_
