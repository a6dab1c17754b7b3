// kiln::kube::testing::FakeApiServer: a Kubernetes API server double for
// tests (testonly).
//
// An HTTP/1.1 server on 127.0.0.1:0 (cpp-httplib) speaking the JSON flavour
// of the Kubernetes API, enough that real clients (kubectl, the Python
// client, kiln's own kube::Client) drive it like a cluster:
//   - discovery (/version, /api, /apis, /api/v1, /apis/apps/v1,
//     /apis/batch/v1), /openapi/v2 and /openapi/v3 for kubectl's validation;
//   - generic storage per resource: namespaces, pods (+ /log, /status),
//     secrets, configmaps, events, serviceaccounts (and the apps/batch
//     workload resources, resourcequotas, limitranges, networking.k8s.io
//     networkpolicies and rbac.authorization.k8s.io roles/rolebindings as
//     plain objects); resourceVersion from one global
//     counter, metadata.uid/creationTimestamp/generation;
//   - GET/LIST/POST/PUT/PATCH (merge, strategic-merge, json-patch)/DELETE,
//     label and field selectors, list/watch with bookmarks, timeoutSeconds
//     and 410 Gone (an ERROR watch event) for compacted resourceVersions;
//   - graceful pod deletion through the kubelet hooks below;
//   - pods/log with follow, timestamps, sinceTime (whole seconds, as the
//     real server), tailLines, limitBytes, container selection;
//   - fault injection. Errors are metav1.Status objects. Protobuf request
//     bodies are refused with 415 and a Status asking for JSON.
// docs/testing.md lists what it does not model.
#ifndef KILN_KUBE_TESTING_FAKE_API_SERVER_H_
#define KILN_KUBE_TESTING_FAKE_API_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace kube {
namespace testing {

struct FakeApiServerOptions {
  // Request bodies larger than this are refused with 413.
  size_t max_body_bytes = 8 << 20;
  // Watch events kept for resuming watches by resourceVersion; older ones
  // answer 410 Gone (as after CompactHistory()).
  size_t history_limit = 10000;
  // A BOOKMARK is sent this often on watches asking for them.
  absl::Duration bookmark_interval = absl::Seconds(1);
  // Watches without timeoutSeconds end after this long (the real server
  // picks a random 30..60 min; a small bound keeps test threads bounded).
  absl::Duration default_watch_timeout = absl::Minutes(5);
  // Concurrent connections served (each holds a thread); more queue.
  int max_connections = 1024;
  // When set, requests must carry "Authorization: Bearer <token>" (401
  // otherwise); WriteKubeconfig writes it. Empty: any credentials pass.
  std::string bearer_token;
  // The namespaces that exist at start (a real cluster has these).
  std::vector<std::string> initial_namespaces = {"default", "kube-system",
                                                 "kube-public"};
  // A deleted namespace stays Terminating this long (its content is deleted
  // at once) before it disappears (namespace_lifecycle.h). Zero: at once.
  absl::Duration namespace_termination = absl::Milliseconds(500);
};

class FakeApiServer {
 public:
  static absl::StatusOr<std::unique_ptr<FakeApiServer>> Start(
      FakeApiServerOptions options = {});
  // Stops: ends every watch and log stream, then joins every thread.
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  // "http://127.0.0.1:PORT"
  std::string url() const;

  // Writes a kubeconfig (cluster url, a token user, context "fake",
  // namespace ns) usable by kubectl, python3-kubernetes and
  // kube::LoadClusterConfig.
  absl::Status WriteKubeconfig(const std::string& path,
                               const std::string& ns) const;

  // ---- In-process access (thread-safe). ----
  // The object at an API path ("/api/v1/namespaces/ns/pods/p"); NotFound.
  absl::StatusOr<nlohmann::json> GetObject(const std::string& api_path) const;
  // Runs fn on the pod (metadata and spec may be changed too, as a kubelet
  // would change status), bumps resourceVersion, emits MODIFIED. NotFound
  // when the pod does not exist. fn runs under the server's lock: it must
  // not call back into the server.
  absl::Status MutatePod(const std::string& ns, const std::string& name,
                         const std::function<void(nlohmann::json& pod)>& fn);
  // ---- For simulated controllers (rollout.h), thread-safe. ----
  // The objects of a collection path ("/apis/apps/v1/deployments" for every
  // namespace, or ".../namespaces/NS/deployments").
  absl::StatusOr<std::vector<nlohmann::json>> ListObjects(
      const std::string& collection_path) const;
  // Runs fn on the stored object (status included, as a controller writes
  // it); identity metadata is kept. A change bumps resourceVersion and
  // emits MODIFIED. fn runs under the server's lock. NotFound.
  absl::Status MutateObject(const std::string& api_path,
                            const std::function<void(nlohmann::json&)>& fn);
  // Creates an object in a collection as a controller would (a POST
  // without a field manager). The stored object.
  absl::StatusOr<nlohmann::json> CreateObject(
      const std::string& collection_path, nlohmann::json object);
  // Records a v1 Event about any object (involvedObject from its apiVersion,
  // kind, namespace, name and uid) from `component`.
  void RecordObjectEvent(const nlohmann::json& object, const std::string& type,
                         const std::string& reason, const std::string& message,
                         const std::string& component);

  // Container logs. A line without a trailing newline; `time` is the
  // kubelet's timestamp of the line. A container with log lines counts as
  // started for pods/log even if the pod status says otherwise.
  void AppendLog(const std::string& ns, const std::string& pod,
                 const std::string& container, absl::string_view line,
                 absl::Time time);
  // The container's log is complete: following streams finish.
  void EndLog(const std::string& ns, const std::string& pod,
              const std::string& container);
  // Creates a v1 Event about the pod (involvedObject kind Pod, its uid,
  // source component kubelet), type "Normal"/"Warning".
  void RecordEvent(const std::string& ns, const std::string& pod,
                   const std::string& type, const std::string& reason,
                   const std::string& message);

  // The kubelet hooks. They run on the request's thread after the change is
  // stored and visible, without the server's lock held, before the response
  // is sent: start work elsewhere, do not block.
  //   on_pod_created: each new pod (the stored object).
  //   on_pod_deleting: a pod marked for graceful deletion (deletionTimestamp
  //     and deletionGracePeriodSeconds set); the kubelet stops its
  //     containers, then calls FinalizePodDeletion.
  // As the real API server does, a delete is immediate (no hook) when the
  // grace period is 0, when the pod is not bound (spec.nodeName empty) or
  // is in a terminal phase (Succeeded/Failed), and always when no kubelet
  // is set.
  struct KubeletHooks {
    std::function<void(const nlohmann::json&)> on_pod_created;
    std::function<void(const nlohmann::json&)> on_pod_deleting;
  };
  void SetKubelet(KubeletHooks hooks);
  // Removes a pod marked for deletion (DELETED event, log followers end).
  // NotFound if gone; FailedPrecondition if not marked.
  absl::Status FinalizePodDeletion(const std::string& ns,
                                   const std::string& name);

  // ---- Faults. ----
  // The next `count` requests whose method (e.g. "GET", "" = any) and path
  // (without the query; RE2 full match) match answer `code` (409, 410, 429
  // with Retry-After when retry_after_seconds > 0, 500, 503...) with a
  // Status, before any other processing. A matching watch request with code
  // 410 is answered as the real server does: 200 and one ERROR event
  // carrying a 410 Expired Status.
  void InjectFault(const std::string& method, const std::string& path_regex,
                   int code, int count, int retry_after_seconds = 0);
  // Closes every open watch stream abruptly (no terminating chunk).
  void DropWatches();
  // Closes every open log stream abruptly.
  void DropLogStreams();
  // Forgets the watch history: every resourceVersion older than the
  // current one answers 410 Gone (watch: an ERROR event).
  void CompactHistory();
  // Sends an ERROR event (410 Expired, "too old resource version") on
  // every open watch and ends it, as a real server does when its watch
  // cache can no longer serve a watcher.
  void ExpireWatches();

  // Requests served (every HTTP request, faults included).
  int64_t request_count() const;
  // The same requests by kind, keyed "VERB RESOURCE[/SUBRESOURCE]" with the
  // Kubernetes verbs: "get pods", "list pods", "watch pods", "create pods",
  // "update pods/status", "patch pods", "delete pods", "deletecollection
  // pods", "get pods/log" (a follow included); a request naming no resource
  // (discovery, /version, /openapi, an unknown path) counts as
  // "METHOD nonresource". Faults included. Sums to request_count().
  std::map<std::string, int64_t> request_counts() const;
  // The current global resourceVersion.
  int64_t resource_version() const;

  class Impl;

 private:
  explicit FakeApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_FAKE_API_SERVER_H_
