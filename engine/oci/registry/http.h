// HTTP requests over libcurl for the registry client: one request at a time
// per call, every request bounded in time and in response size, redirects
// limited, TLS verified (with an optional CA bundle). No retries and no
// authentication here (client.h adds both).
//
// Thread-safe: handles are pooled (connections are reused) and each Do()
// uses its own.
#ifndef KILN_ENGINE_OCI_REGISTRY_HTTP_H_
#define KILN_ENGINE_OCI_REGISTRY_HTTP_H_

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

namespace kiln::oci::registry {

struct HttpResponse;

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Request body: `body`, or when `body_fd` >= 0, `body_length` bytes read
  // with pread from `body_offset` of body_fd.
  std::string body;
  int body_fd = -1;
  int64_t body_offset = 0;
  int64_t body_length = 0;
  // Response body: into HttpResponse::body up to max_body_bytes (more is
  // ResourceExhausted), or — when set and the status is 2xx — to `sink`
  // (an error from the sink aborts the transfer with that error).
  size_t max_body_bytes = 1 << 20;
  std::function<absl::Status(absl::string_view)> sink;
  // Called once the headers of a 2xx response are in, before its body; an
  // error aborts the transfer with that error.
  std::function<absl::Status(const HttpResponse&)> on_headers;
  // Follow up to max_redirects redirects (blob downloads); otherwise a 3xx
  // is returned as the response.
  bool follow_redirects = false;
  // Allow plain-HTTP redirect targets (only for insecure registries).
  bool allow_http_redirects = false;
  // Whole-request limit; the transfer is also aborted when it makes no
  // progress for the transport's stall timeout.
  absl::Duration timeout = absl::Minutes(2);
};

struct HttpResponse {
  long status = 0;
  // Header names lowercased; the last value wins.
  std::map<std::string, std::string> headers;
  std::string body;  // empty when the request had a sink and status was 2xx
  int64_t sink_bytes = 0;  // bytes handed to the sink
  std::string Header(absl::string_view lowercase_name) const;
};

struct HttpOptions {
  std::string ca_file;  // PEM bundle for TLS; "" → the system's
  absl::Duration connect_timeout = absl::Seconds(30);
  // Abort a transfer that moves less than 1 byte/s for this long.
  absl::Duration stall_timeout = absl::Seconds(60);
  int max_redirects = 5;
  std::string user_agent = "kiln";
};

class HttpTransport {
 public:
  explicit HttpTransport(HttpOptions options);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // A response with any HTTP status is OK; transport failures are
  // Unavailable (connect, reset, TLS), DeadlineExceeded (timeout or stall),
  // ResourceExhausted (body over the limit), FailedPrecondition (too many
  // redirects), or the sink's error. The message names the URL without its
  // query (which may carry upload state) and never the credentials.
  absl::StatusOr<HttpResponse> Do(const HttpRequest& request);

 private:
  void* TakeHandle();
  void ReturnHandle(void* handle);

  const HttpOptions options_;
  Mutex mu_;
  std::vector<void*> idle_ ABSL_GUARDED_BY(mu_);
};

// Loads libcurl (bound lazily in kiln's binary, base/lazy) with its TLS
// library and initialises it, as the first request would. Idempotent and
// thread-safe: `kiln run` calls it on a thread for a pipeline that will make
// requests, so that the ~8 ms overlap git and the store's opening.
void PrepareHttp();

// The URL without query or fragment, for messages.
std::string UrlForMessages(absl::string_view url);

}  // namespace kiln::oci::registry

#endif  // KILN_ENGINE_OCI_REGISTRY_HTTP_H_
