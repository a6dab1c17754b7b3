// ConnectionGate: the connection cap for the listeners gRPC accepts on
// itself (TLS over TCP, and the unix socket), where CappedAcceptor cannot
// be used (gRPC 1.51 takes an accepted descriptor only with insecure
// credentials).
//
// gRPC calls a socket mutator (GRPC_ARG_SOCKET_MUTATOR) on every socket it
// accepts, before the TLS handshake or HTTP/2 starts. The gate is that
// mutator: it remembers each admitted descriptor with its socket's inode,
// forgets those whose socket gRPC has since closed (fstat: the number is
// free or names another file), and past `max_connections` open at once
// shuts the new socket down (shutdown(2)): gRPC then sees the end of the
// stream at its first read and closes it, so the client sees the
// connection closed (UNAVAILABLE) and the server keeps no state for it.
// It never tells gRPC that the mutation failed: gRPC 1.51 would stop
// accepting on the listener altogether.
//
// The mutator's ABI is internal to gRPC (src/core/lib/iomgr/
// socket_mutator.h); connection_gate.cc defines it for gRPC 1.51 and
// refuses to build against another version until it is checked again.
//
// Thread-safety: Admit may be called from any gRPC thread at once.
#ifndef KILN_ENGINE_SERVICE_CONNECTION_GATE_H_
#define KILN_ENGINE_SERVICE_CONNECTION_GATE_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/mutex.h"
#include "grpcpp/impl/server_builder_option.h"

namespace kiln::service {

class ConnectionGate : public std::enable_shared_from_this<ConnectionGate> {
 public:
  explicit ConnectionGate(int max_connections)
      : max_connections_(max_connections) {}

  // A builder option that installs this gate as the server's socket
  // mutator (it keeps the gate alive while gRPC holds the mutator).
  std::unique_ptr<grpc::ServerBuilderOption> Option();

  // Decides on an accepted socket: true if admitted (and counted); false
  // if the cap is reached (the caller shuts it down).
  bool Admit(int fd);

  int open_connections();
  int64_t refused() const { return refused_.load(); }

 private:
  struct Admitted {
    int fd;
    dev_t dev;
    ino_t ino;
  };
  // Forgets the connections whose socket gRPC has closed.
  void PruneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_connections_;
  Mutex mu_;
  std::vector<Admitted> admitted_ ABSL_GUARDED_BY(mu_);
  int64_t last_warning_ ABSL_GUARDED_BY(mu_) = -3600;
  std::atomic<int64_t> refused_{0};
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_CONNECTION_GATE_H_
