// StartAgentBlobServer: the blob endpoint pods' kiln agents dial
// (docs/kubernetes-agent.md). `kiln run` starts one over its in-process
// engine when a task runs on a kubernetes executor; the executor hands the
// pods {address they dial, token, CA}.
//
// It is a KilnServer (server.h) on TCP whose only credential is a token
// of role `agent` (fresh and random unless given) (auth.h): holders may call
// FindMissingBlobs, UploadBlob and DownloadBlob and nothing else (every other
// RPC is PERMISSION_DENIED), so it is a blob-only endpoint over the engine's
// store. The listening policy of `kiln serve` applies: a non-loopback
// address needs TLS.
//
// Usage (the CLI, engine/cli):
//   AgentBlobServerOptions o;           // o.listen from --agent-listen
//   auto blobs = StartAgentBlobServer(engine, o);
//   PodExecutorOptions p; p.agent_server = endpoint_flag.empty()
//       ? (*blobs)->address() : endpoint_flag;
//   p.agent_token = (*blobs)->token(); p.agent_ca_pem = <PEM of o.tls_cert>;
//   ... run ...; (*blobs)->Stop();      // or let it go out of scope
//
// Thread-safety: address() and token() are immutable; Stop() once, from
// any thread (the destructor stops too).
#ifndef KILN_ENGINE_SERVICE_AGENT_BLOB_SERVER_H_
#define KILN_ENGINE_SERVICE_AGENT_BLOB_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "engine/service/server.h"

namespace kiln::service {

struct AgentBlobServerOptions {
  // "HOST:PORT" (port 0 picks one). Loopback by default: pods of the
  // Kubernetes double share the host's network.
  std::string listen = "127.0.0.1:0";
  // TLS (required for a non-loopback host): PEM files; agents verify the
  // server with the certificate's CA (KILN_AGENT_CA).
  std::string tls_cert, tls_key;
  // The agent token; "" = a fresh random one (NewRandomToken). `kiln serve`
  // gives its persisted token, so that pods of a run still reach it after a
  // restart. At least 16 characters when given.
  std::string token;
  // Transfers at once (every agent holds the same token, so this is also
  // the per-client limit).
  int max_streams = 256;
  // Grace for in-flight transfers at Stop().
  absl::Duration stop_grace = absl::Seconds(2);
};

class AgentBlobServer {
 public:
  ~AgentBlobServer();
  // "HOST:PORT" actually bound.
  const std::string& address() const { return server_->address(); }
  // The agent token (by default 64 hex characters from the kernel's CSPRNG).
  const std::string& token() const { return token_; }
  // Stops serving (idempotent).
  void Stop();

 private:
  friend absl::StatusOr<std::unique_ptr<AgentBlobServer>> StartAgentBlobServer(
      Engine* engine, AgentBlobServerOptions options);
  AgentBlobServer() = default;
  std::string token_;
  absl::Duration grace_;
  std::unique_ptr<KilnServer> server_;
  bool stopped_ = false;
};

// A fresh random token: 32 bytes from getrandom(2) as 64 hex characters.
absl::StatusOr<std::string> NewRandomToken();

// Starts the blob endpoint over `engine` (which must outlive it).
absl::StatusOr<std::unique_ptr<AgentBlobServer>> StartAgentBlobServer(
    Engine* engine, AgentBlobServerOptions options);

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_AGENT_BLOB_SERVER_H_
