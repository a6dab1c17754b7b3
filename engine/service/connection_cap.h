// CappedAcceptor: a plaintext TCP listener whose connections are accepted
// by kiln and handed to gRPC (grpc::AddInsecureChannelFromFd), at most
// `max_connections` open at once. gRPC 1.51 has no limit on connections;
// this is the cap. A connection past the cap is closed as soon as it is
// accepted (the client sees the connection closed, UNAVAILABLE), and a
// warning is printed at most once a minute while connections are refused.
//
// A connection counts as open while gRPC holds its socket: the acceptor
// remembers each handed-over descriptor with its socket's inode and checks
// (fstat) before each accept whether that socket is still the one open
// there. gRPC closes the descriptor when the connection ends (the peer
// left, the idle timeout, keepalive), which frees its place.
//
// TLS cannot be served this way (gRPC takes only insecure credentials for
// an accepted descriptor): TLS and unix-socket listeners are capped by
// ConnectionGate (connection_gate.h) instead.
//
// Thread-safety: Start and Stop from one thread; open_connections() and
// refused() from any.
#ifndef KILN_ENGINE_SERVICE_CONNECTION_CAP_H_
#define KILN_ENGINE_SERVICE_CONNECTION_CAP_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/service/listen_address.h"
#include "grpcpp/server.h"

namespace kiln::service {

class CappedAcceptor {
 public:
  // Binds and listens on the TCP `address` (every address its host
  // resolves to; port 0 picks one).
  static absl::StatusOr<std::unique_ptr<CappedAcceptor>> Listen(
      const ListenAddress& address, int max_connections);
  ~CappedAcceptor();
  CappedAcceptor(const CappedAcceptor&) = delete;
  CappedAcceptor& operator=(const CappedAcceptor&) = delete;

  // The port bound.
  int port() const { return port_; }
  // Starts accepting into `server` (built and started, with no listening
  // port of its own); it must outlive Stop().
  void Start(grpc::Server* server);
  // Stops accepting and closes the listeners; connections already handed
  // to gRPC stay (grpc::Server::Shutdown ends them). Idempotent.
  void Stop();

  int open_connections() const { return open_.load(); }
  int64_t refused() const { return refused_.load(); }

 private:
  struct Handed {
    int fd;
    dev_t dev;
    ino_t ino;
  };
  CappedAcceptor(std::vector<int> listeners, int port, int max_connections,
                 int wake_read, int wake_write);
  void Loop();
  void Accept(int listener);
  // Forgets the connections whose socket gRPC has closed.
  void Prune();

  const std::vector<int> listeners_;
  const int port_;
  const int max_connections_;
  const int wake_read_, wake_write_;
  grpc::Server* server_ = nullptr;
  std::thread thread_;
  bool stopped_ = false;
  std::vector<Handed> handed_;  // accept thread only
  int64_t last_warning_ = 0;    // accept thread only (monotonic seconds)
  std::atomic<int> open_{0};
  std::atomic<int64_t> refused_{0};
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_CONNECTION_CAP_H_
