// DashboardServer: `kiln serve --http-listen`'s web dashboard and the JSON
// API it uses, over the same kiln::Engine and the same token file and roles
// as the gRPC service (auth.h). docs/dashboard.md describes the API.
//
// Who may call: the API takes `Authorization: Bearer TOKEN`; a browser logs
// in with a token at /login and then holds a session cookie (HttpOnly,
// SameSite=Strict; Secure under TLS). Every action (POST) made with a
// session cookie must carry the session's CSRF token in X-Kiln-CSRF. Roles
// are the gRPC methods' (viewers read, submitters cancel and retry).
//
// What leaves: runs with secret params redacted as in the gRPC replies
// (run_replies.h), events redacted the same way; pages are static files
// that insert every string as text (and a Content-Security-Policy allows
// only the server's own scripts).
//
// Bounds: `threads` connections at once, `max_waiting` more accepted
// (bounded_pool.h); event and log streams (Server-Sent Events) are at most
// `max_streams`, fewer than the threads so pages keep loading; request
// bodies, sessions and every page size are capped.
//
// Thread-safety: Shutdown() may be called from any thread, once.
#ifndef KILN_ENGINE_SERVICE_HTTP_DASHBOARD_SERVER_H_
#define KILN_ENGINE_SERVICE_HTTP_DASHBOARD_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "engine/service/auth.h"
#include "engine/service/http/sessions.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace kiln::service::http {

struct DashboardOptions {
  // "HOST:PORT", "[V6]:PORT" or ":PORT"/"PORT" (loopback). Port 0 picks one.
  std::string listen;
  // Required: `TOKEN ROLE [NAME]` lines, as for gRPC (auth.h).
  std::string token_file;
  // TLS (required for a non-loopback host).
  std::string tls_cert, tls_key;
  int threads = 32;
  int max_waiting = 64;
  int max_streams = 24;
  size_t max_sessions = 1024;
  absl::Duration session_ttl = absl::Hours(12);
  // How often a quiet stream checks its run and sends a keep-alive.
  absl::Duration poll = absl::Milliseconds(500);
  absl::Duration keepalive = absl::Seconds(15);
};

class DashboardServer {
 public:
  static absl::StatusOr<std::unique_ptr<DashboardServer>> Start(
      Engine* engine, DashboardOptions options);
  ~DashboardServer();

  // "http://HOST:PORT" or "https://HOST:PORT" with the bound port.
  const std::string& url() const { return url_; }
  // Stops accepting, ends open streams, joins the threads.
  void Shutdown();

  // Internal (the handlers in dashboard_*.cc).
  struct Caller;

 private:
  DashboardServer(Engine* engine, DashboardOptions options,
                  std::shared_ptr<const TokenTable> tokens);
  void Routes();
  void Pages();
  void Api();
  void Streams();
  void Artifacts();
  void Environments();
  // A live-stream slot (at most options_.max_streams), or false after
  // filling `res` with 503; ReleaseStreamSlot gives it back.
  bool TakeStreamSlot(httplib::Response* res);
  void ReleaseStreamSlot();

  // The caller of `req` allowed to call the gRPC method `method` (its
  // role), or false after filling `res` with 401/403 (or, for a page, a
  // redirect to /login). `action`: a POST that needs the CSRF token when
  // made with a session cookie.
  bool Authenticate(const httplib::Request& req, httplib::Response* res,
                    const char* method, bool action, Caller* caller);

  Engine* const engine_;
  const DashboardOptions options_;
  std::shared_ptr<const TokenTable> tokens_;
  Authorizer authorizer_;
  SessionTable sessions_;
  bool tls_ = false;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  std::string url_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_streams_{0};
};

}  // namespace kiln::service::http

#endif  // KILN_ENGINE_SERVICE_HTTP_DASHBOARD_SERVER_H_
