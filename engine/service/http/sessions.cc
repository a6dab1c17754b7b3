#include "engine/service/http/sessions.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"

namespace kiln::service::http {
namespace {

absl::StatusOr<std::string> RandomToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("no randomness for a session (RAND_bytes)");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

}  // namespace

absl::StatusOr<Session> SessionTable::Create(const Principal& principal,
                                             absl::Time now) {
  absl::StatusOr<std::string> id = RandomToken();
  if (!id.ok()) return id.status();
  absl::StatusOr<std::string> csrf = RandomToken();
  if (!csrf.ok()) return csrf.status();
  Session session{*id, *csrf, principal, now + ttl_};
  MutexLock lock(&mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
  }
  while (!sessions_.empty() && sessions_.size() >= max_sessions_) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second.expires < oldest->second.expires) oldest = it;
    }
    sessions_.erase(oldest);
  }
  sessions_[session.id] = session;
  return session;
}

absl::optional<Session> SessionTable::Find(absl::string_view id,
                                           absl::Time now) {
  if (id.empty()) return absl::nullopt;
  MutexLock lock(&mu_);
  auto it = sessions_.find(std::string(id));
  if (it == sessions_.end()) return absl::nullopt;
  if (it->second.expires <= now) {
    sessions_.erase(it);
    return absl::nullopt;
  }
  return it->second;
}

void SessionTable::Remove(absl::string_view id) {
  MutexLock lock(&mu_);
  sessions_.erase(std::string(id));
}

size_t SessionTable::size() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

bool SecretsEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string CookieValue(absl::string_view header, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) continue;
    if (part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return "";
}

}  // namespace kiln::service::http
