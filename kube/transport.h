// One HTTP exchange with the API server over libcurl (internal to the
// client). Each transfer runs in its own curl multi handle, polled in short
// slices and woken by a CancelFlag (curl_multi_wakeup), so a cancelled
// transfer stops at once; handles are pooled so
// connections (and TLS sessions) are reused. No retries, no authentication
// policy here: client.cc adds both.
#ifndef KILN_KUBE_TRANSPORT_H_
#define KILN_KUBE_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace kiln::kube {

class CancelFlag;

struct TlsSettings {
  std::string ca_pem;  // "" = the system's trust store
  bool insecure_skip_verify = false;
  std::string server_name;  // verify (and send SNI) for this name
};

struct TransportRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::string client_cert_pem, client_key_pem;  // per request (exec plugins)
  absl::Duration timeout = absl::Seconds(30);   // whole transfer
  absl::Duration stall_timeout = absl::InfiniteDuration();
  size_t max_body_bytes = 64 << 20;
  // For a 2xx response: every body chunk goes here instead of `body`;
  // returning false ends the transfer (TransportResponse::stopped).
  std::function<bool(absl::string_view)> sink;
  CancelFlag* cancel = nullptr;
};

struct TransportResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  bool stopped = false;    // the sink asked to stop
  bool cancelled = false;  // the CancelFlag fired
  std::string Header(absl::string_view lowercase_name) const;
};

class Transport {
 public:
  Transport(TlsSettings tls, absl::Duration connect_timeout,
            std::string user_agent);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Any HTTP status is OK. Transport failures: Unavailable (connect, reset,
  // a TLS handshake failure, a stream cut mid-body), FailedPrecondition (the
  // server's certificate is not trusted / does not match, or the client
  // certificate is unusable), DeadlineExceeded (timeout or stall),
  // ResourceExhausted (body over the limit). A cancelled or sink-stopped
  // transfer is OK with `cancelled` / `stopped` set. Messages name the
  // method and the URL without its query, never a credential.
  absl::StatusOr<TransportResponse> Do(const TransportRequest& request);

  int64_t requests_sent() const { return sent_.load(); }

 private:
  struct Slot;
  Slot* Take();
  void Give(Slot* slot);

  const TlsSettings tls_;
  const absl::Duration connect_timeout_;
  const std::string user_agent_;
  std::atomic<int64_t> sent_{0};
  Mutex mu_;
  std::vector<Slot*> idle_ ABSL_GUARDED_BY(mu_);
};

// "https://h:p/path" without query, for messages.
std::string UrlWithoutQuery(absl::string_view url);

}  // namespace kiln::kube

#endif  // KILN_KUBE_TRANSPORT_H_
