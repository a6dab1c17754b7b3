// DashboardServer: start and stop, authentication (bearer or session), the
// login flow, pages and static assets. The API's handlers are in
// dashboard_api.cc, the streams in dashboard_streams.cc.
#include "engine/service/http/dashboard_server.h"

#include <signal.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/service/http/assets.h"
#include "engine/service/http/bounded_pool.h"
#include "engine/service/http/dashboard_internal.h"
#include "engine/service/listen_address.h"

namespace kiln::service::http {
namespace {

constexpr char kSessionCookie[] = "kiln_session";
constexpr char kCsrfHeader[] = "X-Kiln-CSRF";

// Only the server's own files: no inline script or style, no framing.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'";

// ":PORT" and "PORT" mean loopback.
absl::StatusOr<ListenAddress> ParseHttpListen(const std::string& text) {
  std::string full = text;
  int port = 0;
  if (absl::StartsWith(text, ":")) {
    full = absl::StrCat("127.0.0.1", text);
  } else if (absl::SimpleAtoi(text, &port)) {
    full = absl::StrCat("127.0.0.1:", text);
  }
  absl::StatusOr<ListenAddress> address = ParseListenAddress(full);
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen: ", address.status().message()));
  }
  if (address->unix_socket) {
    return absl::InvalidArgumentError(
        "--http-listen takes HOST:PORT or :PORT, not a unix socket");
  }
  return address;
}

void SendAsset(const std::string& name, httplib::Response* res) {
  const EmbeddedAsset* asset = FindAsset(name);
  if (asset == nullptr) {
    SendError(res, absl::NotFoundError(absl::StrCat("no file ", name)));
    return;
  }
  res->set_content(reinterpret_cast<const char*>(asset->data), asset->size,
                   AssetContentType(name));
  res->set_header("Cache-Control", "no-cache");
}

}  // namespace

DashboardServer::DashboardServer(Engine* engine, DashboardOptions options,
                                 std::shared_ptr<const TokenTable> tokens)
    : engine_(engine),
      options_(std::move(options)),
      tokens_(tokens),
      authorizer_(std::move(tokens)),
      sessions_(options_.max_sessions, options_.session_ttl) {}

absl::StatusOr<std::unique_ptr<DashboardServer>> DashboardServer::Start(
    Engine* engine, DashboardOptions options) {
  absl::StatusOr<ListenAddress> address = ParseHttpListen(options.listen);
  if (!address.ok()) return address.status();
  bool have_tls = !options.tls_cert.empty() || !options.tls_key.empty();
  if (have_tls && (options.tls_cert.empty() || options.tls_key.empty())) {
    return absl::InvalidArgumentError(
        "TLS for the dashboard needs both --tls-cert and --tls-key");
  }
  if (have_tls) {
    if (absl::Status key = CheckTlsKeyFile(options.tls_key); !key.ok()) {
      return key;
    }
  }
  if (options.token_file.empty()) {
    return absl::FailedPreconditionError(
        "--http-listen needs --token-file: the dashboard always asks for a "
        "token (any local user can reach a loopback port)");
  }
  if (absl::Status policy = CheckListenPolicy(*address, true, have_tls);
      !policy.ok()) {
    return policy;
  }
  if (options.threads < 2 || options.max_streams < 1 ||
      options.max_streams >= options.threads || options.max_waiting < 1) {
    return absl::InvalidArgumentError(
        "the dashboard needs 2+ threads, more than its streams (1+)");
  }
  absl::StatusOr<TokenTable> table = TokenTable::ReadFile(options.token_file);
  if (!table.ok()) return table.status();
  auto tokens = std::make_shared<const TokenTable>(std::move(*table));

  std::unique_ptr<DashboardServer> server(
      new DashboardServer(engine, std::move(options), std::move(tokens)));
  const DashboardOptions& opts = server->options_;
  if (have_tls) {
    auto ssl = std::make_unique<httplib::SSLServer>(opts.tls_cert.c_str(),
                                                    opts.tls_key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dashboard TLS: cannot load ", opts.tls_cert, " / ", opts.tls_key));
    }
    server->server_ = std::move(ssl);
    server->tls_ = true;
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& svr = *server->server_;
  const int threads = opts.threads, waiting = opts.max_waiting;
  svr.new_task_queue = [threads, waiting] {
    return new BoundedPool(threads, waiting);
  };
  svr.set_payload_max_length(64 << 10);
  svr.set_read_timeout(10, 0);
  svr.set_write_timeout(10, 0);
  svr.set_keep_alive_timeout(5);
  svr.set_keep_alive_max_count(100);
  server->Routes();

  // A client that leaves mid-reply must not kill the process.
  signal(SIGPIPE, SIG_IGN);
  int port = address->port;
  if (port == 0) {
    port = svr.bind_to_any_port(address->host);
  } else if (!svr.bind_to_port(address->host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "dashboard: cannot listen on ", address->host, ":", address->port));
  }
  std::string host = absl::StrContains(address->host, ':')
                         ? absl::StrCat("[", address->host, "]")
                         : address->host;
  server->url_ =
      absl::StrCat(server->tls_ ? "https://" : "http://", host, ":", port);
  server->listener_ =
      std::thread([s = server.get()] { s->server_->listen_after_bind(); });
  // httplib's stop() does nothing to a server whose listen loop has not
  // started yet (Shutdown would then wait forever in join): return only
  // once the loop runs.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!server->server_->is_running()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          "dashboard: the listen loop did not start within 30 s");
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return server;
}

DashboardServer::~DashboardServer() { Shutdown(); }

void DashboardServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (server_ != nullptr) server_->stop();
  if (listener_.joinable()) listener_.join();
}

bool DashboardServer::Authenticate(const httplib::Request& req,
                                   httplib::Response* res, const char* method,
                                   bool action, Caller* caller) {
  std::string authorization = req.get_header_value("Authorization");
  if (!authorization.empty()) {
    absl::StatusOr<Principal> who =
        authorizer_.Authorize(authorization, method);
    if (!who.ok()) {
      SendError(res, who.status());
      return false;
    }
    caller->principal = *who;
    return true;
  }
  absl::optional<Session> session = sessions_.Find(
      CookieValue(req.get_header_value("Cookie"), kSessionCookie), absl::Now());
  if (!session.has_value()) {
    SendError(res, absl::UnauthenticatedError(
                       "log in at /login, or send Authorization: Bearer "
                       "TOKEN"));
    return false;
  }
  Role needed = RequiredRole(method);
  if (!RoleMayCall(session->principal.role, method)) {
    SendError(res, absl::PermissionDeniedError(
                       absl::StrCat(method, " needs role ", RoleName(needed),
                                    "; ", session->principal.name, " is ",
                                    RoleName(session->principal.role))));
    return false;
  }
  if (action &&
      !SecretsEqual(req.get_header_value(kCsrfHeader), session->csrf_token)) {
    SendError(res,
              absl::PermissionDeniedError(absl::StrCat(
                  "missing or wrong CSRF token (header ", kCsrfHeader, ")")));
    return false;
  }
  caller->principal = session->principal;
  caller->by_session = true;
  caller->csrf_token = session->csrf_token;
  return true;
}

void DashboardServer::Routes() {
  server_->set_post_routing_handler(
      [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Content-Security-Policy", kContentSecurityPolicy);
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("X-Frame-Options", "DENY");
        res.set_header("Referrer-Policy", "no-referrer");
        if (!res.has_header("Cache-Control")) {
          res.set_header("Cache-Control", "no-store");
        }
      });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SendError(&res, absl::InternalError("internal error"));
      });
  Pages();
  // Streams first: "/api/runs/stream" must not be taken for a run id by
  // Api's "/api/runs/ID".
  Streams();
  Api();
  Artifacts();
  Environments();
}

void DashboardServer::Pages() {
  httplib::Server& svr = *server_;
  // A page for a logged-in browser (or a bearer token); others are sent to
  // the login form.
  auto page = [this](const char* asset) {
    return [this, asset](const httplib::Request& req, httplib::Response& res) {
      Caller caller;
      httplib::Response ignored;
      if (!Authenticate(req, &ignored, "ListRuns", false, &caller)) {
        res.status = 303;
        res.set_header("Location", "/login");
        return;
      }
      SendAsset(asset, &res);
    };
  };
  svr.Get("/", page("index.html"));
  svr.Get("/run", page("run.html"));
  svr.Get("/environments", page("environments.html"));
  svr.Get("/login", [](const httplib::Request&, httplib::Response& res) {
    SendAsset("login.html", &res);
  });
  svr.Get(R"(/static/([a-z0-9_\-]+\.(js|css|svg)))",
          [](const httplib::Request& req, httplib::Response& res) {
            SendAsset(req.matches[1], &res);
          });
  svr.Post("/login", [this](const httplib::Request& req,
                            httplib::Response& res) {
    std::string token = req.get_param_value("token");
    absl::optional<Principal> who =
        tokens_->Find(absl::StripAsciiWhitespace(token));
    if (!who.has_value()) {
      res.status = 303;
      res.set_header("Location", "/login?failed=1");
      return;
    }
    absl::StatusOr<Session> session = sessions_.Create(*who, absl::Now());
    if (!session.ok()) {
      SendError(&res, session.status());
      return;
    }
    res.status = 303;
    res.set_header("Location", "/");
    res.set_header("Set-Cookie",
                   absl::StrCat(kSessionCookie, "=", session->id,
                                "; Path=/; HttpOnly; SameSite=Strict; Max-Age=",
                                absl::ToInt64Seconds(options_.session_ttl),
                                tls_ ? "; Secure" : ""));
  });
  svr.Post(
      "/logout", [this](const httplib::Request& req, httplib::Response& res) {
        Caller caller;
        if (!Authenticate(req, &res, "ListRuns", true, &caller)) return;
        sessions_.Remove(
            CookieValue(req.get_header_value("Cookie"), kSessionCookie));
        res.set_header("Set-Cookie",
                       absl::StrCat(kSessionCookie,
                                    "=; Path=/; HttpOnly; SameSite=Strict; "
                                    "Max-Age=0",
                                    tls_ ? "; Secure" : ""));
        SendJson(&res, nlohmann::json{{"ok", true}});
      });
}

}  // namespace kiln::service::http
