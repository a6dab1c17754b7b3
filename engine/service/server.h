// KilnServer: `kiln serve`'s gRPC server — the kiln.v1.Kiln service plus
// grpc.health.v1.Health and server reflection — with the listening policy
// (listen_address.h), TLS, message-size, stream and thread limits, and
// flow-control windows sized for fast blob transfer.
//
// A unix socket is created owner-only (umask 077 while binding, then chmod
// 0600). Start() changes the process umask briefly: call it before other
// threads create files.
//
// Thread-safety: Shutdown() may be called from any thread, once.
#ifndef KILN_ENGINE_SERVICE_SERVER_H_
#define KILN_ENGINE_SERVICE_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "engine/service/connection_cap.h"
#include "engine/service/connection_gate.h"
#include "engine/service/kiln_service.h"
#include "grpcpp/server.h"

namespace kiln::service {

// Threads always left for unary calls beyond the stream limit.
inline constexpr int kMinUnaryThreads = 64;

struct ServerOptions {
  // "unix:PATH" or "HOST:PORT" (port 0 picks one). Empty: the store's
  // default socket.
  std::string listen;
  // Required for TCP: `TOKEN ROLE [NAME]` lines (auth.h).
  std::string token_file;
  // A file whose first field is a token given role `agent` (auth.h; pods'
  // kiln agents: blob RPCs only), in addition to token_file's. Owner-only.
  std::string agent_token_file;
  // Tokens given in memory (used when token_file and agent_token_file are
  // empty; e.g. StartAgentBlobServer's fresh agent token).
  std::shared_ptr<const TokenTable> tokens;
  // TLS (required for a non-loopback host); with client_ca, clients must
  // present a certificate signed by it.
  std::string tls_cert, tls_key, client_ca;
  // Per HTTP/2 connection.
  int max_concurrent_streams = 128;
  // Largest message received (blob chunks are <= 4 MiB).
  int max_receive_message_bytes = 8 << 20;
  // Threads serving calls; calls beyond them fail RESOURCE_EXHAUSTED. Must
  // exceed service.max_streams by at least kMinUnaryThreads, so that unary
  // calls (an admin's CancelRun) always find a thread.
  int max_threads = 1024;
  // Memory gRPC may use for connections and calls (resource quota).
  int64_t max_memory_bytes = int64_t{1} << 30;
  // Connections open at once (plain TCP: connection_cap.h; TLS and the
  // unix socket: connection_gate.h); more are closed as soon as they are
  // accepted.
  int max_connections = 512;
  // A connection with no call open for this long is closed (GOAWAY).
  absl::Duration connection_idle = absl::Minutes(2);
  // A connection must finish its handshake (TLS) within this.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Serve grpc.reflection: always on a unix socket; on TCP only when set
  // (reflection is unauthenticated and each of its streams holds a thread).
  bool reflection_on_tcp = false;
  ServiceOptions service;
};

class KilnServer {
 public:
  // Validates the options, loads tokens, binds and starts serving.
  static absl::StatusOr<std::unique_ptr<KilnServer>> Start(
      Engine* engine, ServerOptions options);
  ~KilnServer();

  // The address clients dial ("unix:PATH" or "HOST:PORT" with the port
  // actually bound).
  const std::string& address() const { return address_; }
  // True when serving TCP without TLS (loopback): traffic is unencrypted.
  bool plaintext_tcp() const { return plaintext_tcp_; }

  // Stops accepting calls, ends open streams (UNAVAILABLE: clients resume),
  // waits up to `grace` for in-flight calls, then cancels the rest. Removes
  // the unix socket. Does not shut the engine down.
  void Shutdown(absl::Duration grace);

 private:
  KilnServer() = default;

  std::unique_ptr<KilnService> service_;
  std::unique_ptr<CappedAcceptor> acceptor_;  // plain TCP only
  std::shared_ptr<ConnectionGate> gate_;      // TLS, unix socket
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string socket_path_;
  bool plaintext_tcp_ = false;
  bool shut_down_ = false;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_SERVER_H_
