// A loopback HTTP(S) server for the client's tests (testonly): cpp-httplib
// on 127.0.0.1:0 with handlers a test installs, stopped (and every stream it
// serves ended) on destruction.
#ifndef KILN_KUBE_TEST_SERVER_H_
#define KILN_KUBE_TEST_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace kiln::kube::testing {

class TestServer {
 public:
  // Plain HTTP.
  TestServer() : server_(std::make_unique<httplib::Server>()) { Start(); }
  // HTTPS; with `client_ca` non-empty, client certificates signed by it are
  // required.
  TestServer(const std::string& cert, const std::string& key,
             const std::string& client_ca)
      : server_(std::make_unique<httplib::SSLServer>(
            cert.c_str(), key.c_str(),
            client_ca.empty() ? nullptr : client_ca.c_str())),
        tls_(true) {
    Start();
  }
  ~TestServer() {
    stopping_ = true;
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  httplib::Server& http() { return *server_; }
  int port() const { return port_; }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") +
           "://127.0.0.1:" + std::to_string(port_);
  }
  // True once the server is shutting down: long handlers return.
  bool stopping() const { return stopping_.load(); }
  // Sleeps up to `ms` in small steps, returning early when stopping.
  void Nap(int ms) const {
    for (int i = 0; i < ms / 10 && !stopping(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Starts serving. REQUIRES: every handler is installed before (httplib's
  // handler lists are not synchronized).
  void Serve() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    // httplib's stop() misses a listen loop that has not started yet.
    while (!server_->is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  void Start() {
    server_->set_keep_alive_timeout(1);
    port_ = server_->bind_to_any_port("127.0.0.1");
  }

  std::unique_ptr<httplib::Server> server_;
  bool tls_ = false;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kiln::kube::testing

#endif  // KILN_KUBE_TEST_SERVER_H_
