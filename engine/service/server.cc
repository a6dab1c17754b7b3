#include "engine/service/server.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/service/connection_cap.h"
#include "engine/service/connection_gate.h"
#include "engine/service/listen_address.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace kiln::service {
namespace {

// Decides grpc.reflection for one builder: linking the reflection plugin
// registers it for every builder of the process, so this option removes it
// and adds one back only where wanted.
class ReflectionOption : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enable) : enable_(enable) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    auto reflection = grpc::reflection::ProtoServerReflectionPlugin().name();
    plugins->erase(
        std::remove_if(
            plugins->begin(), plugins->end(),
            [&](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
              return p->name() == reflection;
            }),
        plugins->end());
    if (enable_) {
      plugins->push_back(
          std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
    }
  }

 private:
  const bool enable_;
};

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerOptions& options) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (options.tls_cert.empty()) {
    if (!options.client_ca.empty()) {
      return absl::InvalidArgumentError("--client-ca needs --tls-cert");
    }
    return grpc::InsecureServerCredentials();
  }
  absl::StatusOr<std::string> cert = ReadPem(options.tls_cert);
  if (!cert.ok()) return cert.status();
  if (absl::Status s = CheckTlsKeyFile(options.tls_key); !s.ok()) return s;
  absl::StatusOr<std::string> key = ReadPem(options.tls_key);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!options.client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(options.client_ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// The agent token: the first field of the first line that is not blank or
// a comment, from an owner-only file.
absl::StatusOr<std::string> ReadAgentToken(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path,
                     ": agent token file is accessible by group or others "
                     "(chmod 600)"));
  }
  if (!S_ISREG(st.st_mode) || st.st_size > (1 << 16)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file of at most 64 KiB"));
  }
  absl::StatusOr<std::string> text = ReadPem(path);
  if (!text.ok()) return text.status();
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    return std::string(fields[0]);
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": no token"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<KilnServer>> KilnServer::Start(
    Engine* engine, ServerOptions options) {
  std::string listen =
      options.listen.empty()
          ? absl::StrCat("unix:", DefaultSocketPath(engine->store_dir()))
          : options.listen;
  absl::StatusOr<ListenAddress> address = ParseListenAddress(listen);
  if (!address.ok()) return address.status();
  const bool have_tokens = !options.token_file.empty() ||
                           !options.agent_token_file.empty() ||
                           options.tokens != nullptr;
  if (absl::Status s =
          CheckListenPolicy(*address, have_tokens, !options.tls_cert.empty());
      !s.ok()) {
    return s;
  }
  constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
  if (address->unix_socket && address->path.size() > kMaxSocketPath) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", address->path, " is longer than ", kMaxSocketPath,
        " bytes; pass --listen unix:SHORTER_PATH"));
  }
  if (!options.token_file.empty() || !options.agent_token_file.empty()) {
    absl::StatusOr<TokenTable> tokens = TokenTable();
    if (!options.token_file.empty()) {
      tokens = TokenTable::ReadFile(options.token_file);
      if (!tokens.ok()) return tokens.status();
    }
    if (!options.agent_token_file.empty()) {
      absl::StatusOr<std::string> agent =
          ReadAgentToken(options.agent_token_file);
      if (!agent.ok()) return agent.status();
      absl::Status added = tokens->Add(*agent, Role::kAgent, "agent");
      if (!added.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(options.agent_token_file, ": ", added.message()));
      }
    }
    options.service.tokens =
        std::make_shared<const TokenTable>(std::move(*tokens));
  } else {
    options.service.tokens = options.tokens;
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      Credentials(options);
  if (!credentials.ok()) return credentials.status();

  if (options.service.max_streams < 1 ||
      options.service.max_streams_per_client < 1 ||
      options.service.admin_stream_reserve < 0 ||
      options.service.admin_stream_reserve >= options.service.max_streams) {
    return absl::InvalidArgumentError(
        "stream limits must be positive, with the admin reserve below the "
        "total");
  }
  if (options.max_threads < options.service.max_streams + kMinUnaryThreads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the thread limit (", options.max_threads,
        ") must exceed the stream limit (", options.service.max_streams,
        ") by at least ", kMinUnaryThreads));
  }

  std::unique_ptr<KilnServer> server(new KilnServer());
  server->plaintext_tcp_ = !address->unix_socket && options.tls_cert.empty();
  absl::StatusOr<std::unique_ptr<KilnService>> service =
      KilnService::Create(engine, options.service);
  if (!service.ok()) return service.status();
  server->service_ = std::move(*service);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(
      address->unix_socket || options.reflection_on_tcp));
  int bound_port = 0;
  if (server->plaintext_tcp_) {
    // Plain TCP: kiln accepts and caps the connections (connection_cap.h).
    absl::StatusOr<std::unique_ptr<CappedAcceptor>> acceptor =
        CappedAcceptor::Listen(*address, options.max_connections);
    if (!acceptor.ok()) return acceptor.status();
    server->acceptor_ = std::move(*acceptor);
    bound_port = server->acceptor_->port();
  } else {
    // TLS and the unix socket: gRPC accepts, the gate caps
    // (connection_gate.h).
    server->gate_ = std::make_shared<ConnectionGate>(options.max_connections);
    builder.SetOption(server->gate_->Option());
    builder.AddListeningPort(address->GrpcTarget(), *credentials,
                             address->unix_socket ? nullptr : &bound_port);
  }
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_concurrent_streams);
  // Large windows and BDP probing: blob streams run at memory speed.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, 8 << 20);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20);
  // Read the socket in large pieces (the default starts at 8 KiB).
  builder.AddChannelArgument(GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20);
  builder.AddChannelArgument(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10);
  builder.AddChannelArgument(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 4 << 20);
  // Find vanished peers (a watcher whose host went away).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  // Keepalive enforcement: a client may ping at most every 10 s while calls
  // are open, and not at all without them; the second strike closes the
  // connection (GOAWAY too_many_pings).
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // Idle and half-open connections do not stay: no call for
  // connection_idle closes a connection; a handshake must finish in time.
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_IDLE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.connection_idle)));
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.handshake_timeout)));
  // Up to 16 idle handler threads wait for calls (gRPC keeps 2): at 200
  // clients each starting and watching runs, the calls' threads were
  // started and ended over and over (B9: 720-800 -> 800-1,000 runs/s).
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 16);
  grpc::ResourceQuota quota("kiln-serve");
  quota.SetMaxThreads(options.max_threads);
  quota.Resize(static_cast<size_t>(options.max_memory_bytes));
  builder.SetResourceQuota(quota);

  mode_t old_umask = 0;
  if (address->unix_socket) {
    server->socket_path_ = address->path;
    old_umask = umask(077);
  }
  server->server_ = builder.BuildAndStart();
  if (address->unix_socket) umask(old_umask);
  if (server->server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address->GrpcTarget()));
  }
  if (server->acceptor_ != nullptr) {
    server->acceptor_->Start(server->server_.get());
  }
  if (address->unix_socket) {
    if (chmod(address->path.c_str(), 0600) != 0) {
      server->server_->Shutdown();
      return absl::InternalError(
          absl::StrCat("chmod 0600 ", address->path, " failed"));
    }
    server->address_ = address->GrpcTarget();
  } else {
    ListenAddress bound = *address;
    bound.port = bound_port;
    server->address_ = bound.GrpcTarget();
  }
  return server;
}

void KilnServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (acceptor_ != nullptr) acceptor_->Stop();  // no new connections
  service_->BeginShutdown();
  if (auto* health = server_->GetHealthCheckService()) {
    health->Shutdown();
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  if (!socket_path_.empty()) unlink(socket_path_.c_str());
}

KilnServer::~KilnServer() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

}  // namespace kiln::service
