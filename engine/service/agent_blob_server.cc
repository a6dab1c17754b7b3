#include "engine/service/agent_blob_server.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/service/auth.h"

namespace kiln::service {

absl::StatusOr<std::string> NewRandomToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

absl::StatusOr<std::unique_ptr<AgentBlobServer>> StartAgentBlobServer(
    Engine* engine, AgentBlobServerOptions options) {
  if (options.listen.empty() || absl::StartsWith(options.listen, "unix:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent blob endpoint: listen address \"", options.listen,
                     "\" must be HOST:PORT (pods dial it over TCP)"));
  }
  if (options.max_streams < 1) {
    return absl::InvalidArgumentError(
        "agent blob endpoint: max_streams must be positive");
  }
  absl::StatusOr<std::string> token = options.token;
  if (options.token.empty()) {
    token = NewRandomToken();
    if (!token.ok()) return token.status();
  } else if (options.token.size() < 16) {
    return absl::InvalidArgumentError(
        "agent blob endpoint: a given token needs at least 16 characters");
  }
  absl::StatusOr<TokenTable> table =
      TokenTable::Single(*token, Role::kAgent, "kiln-agent");
  if (!table.ok()) return table.status();

  ServerOptions server;
  server.listen = options.listen;
  server.tokens = std::make_shared<const TokenTable>(std::move(*table));
  server.tls_cert = options.tls_cert;
  server.tls_key = options.tls_key;
  // Every agent holds the one token: the per-client limit is the total.
  server.service.max_streams = options.max_streams + 1;
  server.service.max_streams_per_client = options.max_streams;
  server.service.admin_stream_reserve = 1;
  server.max_threads = server.service.max_streams + kMinUnaryThreads;
  absl::StatusOr<std::unique_ptr<KilnServer>> started =
      KilnServer::Start(engine, std::move(server));
  if (!started.ok()) {
    return absl::Status(
        started.status().code(),
        absl::StrCat("agent blob endpoint: ", started.status().message()));
  }
  std::unique_ptr<AgentBlobServer> out(new AgentBlobServer());
  out->token_ = std::move(*token);
  out->grace_ = options.stop_grace;
  out->server_ = std::move(*started);
  return out;
}

void AgentBlobServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  server_->Shutdown(grace_);
}

AgentBlobServer::~AgentBlobServer() { Stop(); }

}  // namespace kiln::service
