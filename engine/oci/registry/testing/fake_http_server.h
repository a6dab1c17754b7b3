// A tiny HTTP/1.1 server on 127.0.0.1 for tests that need a registry (or a
// token service) to misbehave on purpose: wrong bytes, truncated bodies,
// redirect loops, stalls, error statuses, challenges. One connection at a
// time, one request per connection ("Connection: close").
#ifndef KILN_ENGINE_OCI_REGISTRY_TESTING_FAKE_HTTP_SERVER_H_
#define KILN_ENGINE_OCI_REGISTRY_TESTING_FAKE_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace kiln::oci::registry::testing {

struct FakeRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string Header(const std::string& lowercase_name) const;
  std::string Path() const { return target.substr(0, target.find('?')); }
};

struct FakeResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Content-Length is body.size() unless set (≥ 0): a larger value with
  // the connection closed after `body` makes a truncated transfer.
  int64_t content_length = -1;
  // Never answer: hold the connection open until the server stops.
  bool hang = false;
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;
  static absl::StatusOr<std::unique_ptr<FakeHttpServer>> Start(Handler handler);
  ~FakeHttpServer();

  // "127.0.0.1:PORT".
  std::string address() const;
  // The requests served so far.
  std::vector<FakeRequest> Requests();

 private:
  FakeHttpServer() = default;
  void Serve();
  void HandleConnection(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // written on destruction
  int port_ = 0;
  std::thread thread_;
  Mutex mu_;
  std::vector<FakeRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::oci::registry::testing

#endif  // KILN_ENGINE_OCI_REGISTRY_TESTING_FAKE_HTTP_SERVER_H_
