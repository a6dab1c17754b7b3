// Browser sessions of the dashboard: a login with a bearer token (auth.h)
// creates one; the browser holds only its random id, in an HttpOnly,
// SameSite=Strict cookie. Each session has its own CSRF token, which every
// action (a POST) must echo in a header: a cookie alone never acts.
//
// Bounded: at most `max_sessions` (the oldest is dropped past it), each
// expiring `ttl` after login. Ids and CSRF tokens are 32 random bytes
// (OpenSSL RAND_bytes), compared in constant time.
//
// Thread-safety: every method is thread-safe.
#ifndef KILN_ENGINE_SERVICE_HTTP_SESSIONS_H_
#define KILN_ENGINE_SERVICE_HTTP_SESSIONS_H_

#include <cstddef>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "base/mutex.h"
#include "engine/service/auth.h"

namespace kiln::service::http {

struct Session {
  std::string id;
  std::string csrf_token;
  Principal principal;
  absl::Time expires;
};

class SessionTable {
 public:
  SessionTable(size_t max_sessions, absl::Duration ttl)
      : max_sessions_(max_sessions), ttl_(ttl) {}

  // A new session for `principal`. Internal if no randomness is available.
  absl::StatusOr<Session> Create(const Principal& principal, absl::Time now);
  // The live session with this id, if any.
  absl::optional<Session> Find(absl::string_view id, absl::Time now);
  void Remove(absl::string_view id);
  size_t size() const;

 private:
  const size_t max_sessions_;
  const absl::Duration ttl_;
  mutable Mutex mu_;
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

// Whether two secrets are equal, in time independent of where they differ.
bool SecretsEqual(absl::string_view a, absl::string_view b);

// The value of cookie `name` in a Cookie header ("" if absent).
std::string CookieValue(absl::string_view header, absl::string_view name);

}  // namespace kiln::service::http

#endif  // KILN_ENGINE_SERVICE_HTTP_SESSIONS_H_
