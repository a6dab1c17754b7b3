// kiln::kube::Client: a small Kubernetes API client over HTTP+JSON (libcurl,
// nlohmann JSON). CRUD on any API path, list with `continue`, list+watch with
// resourceVersion, bookmarks, reconnect and relist on 410 Gone, and pod log
// streaming. Authentication: bearer token (inline, token file re-read when it
// changes, or a client-go exec plugin, cached until it expires and re-run
// once on 401) and TLS client certificates.
//
// Every request is bounded in time (ClientOptions::request_timeout; watches
// by WatchOptions::timeout per connection; log streams by a stall limit).
// 429 (honouring Retry-After) and 5xx are retried with capped exponential
// backoff, as are transport failures of idempotent requests. Errors are
// absl::Status with the code chosen by what the caller does next:
//   404 NotFound, 409 AlreadyExists (reason AlreadyExists) or Aborted (reason
//   Conflict), 410 FailedPrecondition (reason Expired or Gone),
//   401 Unauthenticated, 403 PermissionDenied, 400/422 InvalidArgument,
//   429/5xx after the retries Unavailable, a timeout DeadlineExceeded.
// Message: "<VERB> <path>: <reason>: <Status.message from the API>".
// ApiReason() returns the API Status.reason. Tokens and keys never appear in
// a message.
//
// Thread-safe: one Client per cluster, shared by every thread.
#ifndef KILN_KUBE_CLIENT_H_
#define KILN_KUBE_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"
#include "nlohmann/json.hpp"

namespace kiln::kube {

// The API Status.reason carried by an error of this client ("AlreadyExists",
// "Conflict", "NotFound", "Expired", "Gone", "Unauthorized", "Forbidden",
// "Invalid", "TooManyRequests", "Timeout", ...); "" for other statuses.
std::string ApiReason(const absl::Status& status);

// A shared, thread-safe "stop now" for streaming calls: Cancel() makes an
// in-flight transfer (and any backoff wait) of a call given this flag return
// at once: it wakes the transfer's poll rather than waiting for it to time
// out (an idle watch would otherwise hold its caller up to a poll slice).
class CancelFlag {
 public:
  CancelFlag() = default;
  CancelFlag(const CancelFlag&) = delete;
  CancelFlag& operator=(const CancelFlag&) = delete;

  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Waits up to `d`; returns true when cancelled (at once if already).
  bool WaitFor(absl::Duration d);

  // For the transport: `wake` is called (under the flag's lock, so it never
  // runs after RemoveWaker returns) when Cancel() fires. Check cancelled()
  // after adding: a Cancel() before AddWaker calls nothing.
  int AddWaker(std::function<void()> wake);
  void RemoveWaker(int id);

 private:
  std::atomic<bool> cancelled_{false};
  Mutex mu_;
  std::map<int, std::function<void()>> wakers_;  // guarded by mu_
  int next_waker_ = 0;                           // guarded by mu_
};

struct ClientOptions {
  absl::Duration request_timeout = absl::Seconds(30);  // whole request
  absl::Duration connect_timeout = absl::Seconds(10);
  int max_retries = 5;  // for 429, 5xx and transport failures
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);  // caps Retry-After too
  // A non-follow log read moving no byte for this long is aborted (follow
  // streams and watches are idle by nature; TCP keep-alive and `cancel`
  // bound those).
  absl::Duration stall_timeout = absl::Seconds(60);
  // An exec credential plugin running longer is killed.
  absl::Duration exec_plugin_timeout = absl::Seconds(60);
  size_t max_response_bytes = 64 << 20;
  std::string user_agent = "kiln";
};

struct ListOptions {
  std::string label_selector, field_selector;
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK
  nlohmann::json object;
};

struct WatchOptions {
  std::string label_selector, field_selector;
  // "" = list first (each object an ADDED event), then watch from the list's
  // resourceVersion.
  std::string resource_version;
  bool allow_bookmarks = true;
  absl::Duration timeout = absl::Minutes(5);  // per request; reconnects
};

struct LogOptions {
  std::string container;
  bool follow = false;
  std::optional<absl::Time> since_time;
  bool timestamps = true;
};

enum class PatchType { kMerge, kStrategicMerge, kJson, kApply };

struct PatchOptions {
  std::string field_manager;
  bool force = false;
};

// Whether `field_manager` set fields of the object whose `metadata` this is
// with server-side apply (a managedFields entry with operation Apply).
bool AppliedBy(const nlohmann::json& metadata,
               const std::string& field_manager);

// Server-side apply: the manager owns the fields it sends; `force` takes
// over fields other managers own instead of failing with a conflict.
struct ApplyOptions {
  std::string field_manager;  // required
  bool force = false;
};

struct DeleteOptions {
  std::optional<int64_t> grace_period_seconds;
  std::string propagation_policy;  // "", Foreground, Background, Orphan
};

class Client {
 public:
  // Validates the configuration (server URL, PEM material) and prepares the
  // credentials; no request is sent.
  static absl::StatusOr<std::unique_ptr<Client>> Create(
      ClusterConfig config, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClusterConfig& config() const { return config_; }

  // `path` is an API path ("/api/v1/namespaces/ns/pods/p"), optionally with a
  // query.
  absl::StatusOr<nlohmann::json> Get(const std::string& path);
  // Follows `continue` and returns one list whose "items" holds every page's.
  absl::StatusOr<nlohmann::json> List(const std::string& collection,
                                      const ListOptions& options = {});
  absl::StatusOr<nlohmann::json> Create(const std::string& collection,
                                        const nlohmann::json& object);
  absl::StatusOr<nlohmann::json> Replace(const std::string& path,
                                         const nlohmann::json& object);
  absl::StatusOr<nlohmann::json> Patch(const std::string& path,
                                       const nlohmann::json& body,
                                       PatchType type,
                                       const PatchOptions& options = {});
  // Server-side apply of `object` at its object path (created when
  // missing). A conflict with another field manager is Aborted (reason
  // "Conflict") whose message names the manager and the fields.
  absl::StatusOr<nlohmann::json> Apply(const std::string& path,
                                       const nlohmann::json& object,
                                       const ApplyOptions& options);
  // 404 is NotFound (callers decide whether that is fine).
  absl::Status Delete(const std::string& path,
                      const DeleteOptions& options = {});

  // List+watch: calls on_event for each event (ADDED for the initial list
  // when resource_version is empty); reconnects a dropped watch from the last
  // seen resourceVersion (bookmarks update it); on 410 Gone relists and emits
  // the current objects as ADDED/MODIFIED/DELETED relative to what it had
  // seen, then continues. Returns OK when on_event returns false or `cancel`
  // (may be null) fires; an error only for a non-retryable failure.
  absl::Status Watch(const std::string& collection, const WatchOptions& options,
                     const std::function<bool(const WatchEvent&)>& on_event,
                     CancelFlag* cancel);

  // pods/log: calls on_line for each line without its newline (timestamps:
  // "RFC3339Nano line"). Returns OK when the stream ends (container finished,
  // or all of it read when follow=false), on_line returns false, or `cancel`
  // fires. A dropped connection is Unavailable (the caller resumes with
  // since_time and drops duplicates).
  absl::Status StreamLog(const std::string& ns, const std::string& pod,
                         const LogOptions& options,
                         const std::function<bool(absl::string_view)>& on_line,
                         CancelFlag* cancel);

  int64_t request_count() const;  // every HTTP request sent

  class Impl;

 private:
  Client(ClusterConfig config, std::unique_ptr<Impl> impl);
  const ClusterConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kube

#endif  // KILN_KUBE_CLIENT_H_
