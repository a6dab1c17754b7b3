#include "engine/service/stream_limiter.h"

#include "absl/strings/str_cat.h"

namespace kiln::service {

StreamLimiter::Slot::Slot(Slot&& other) noexcept
    : owner_(other.owner_), client_(std::move(other.client_)) {
  other.owner_ = nullptr;
}

StreamLimiter::Slot::~Slot() {
  if (owner_ != nullptr) owner_->Release(client_);
}

absl::StatusOr<StreamLimiter::Slot> StreamLimiter::Acquire(
    const std::string& client, bool admin) {
  MutexLock lock(&mu_);
  auto it = active_.find(client);
  int held = it == active_.end() ? 0 : it->second;
  if (held >= limits_.per_client) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many open streams for this client (limit ",
                     limits_.per_client, ")"));
  }
  int cap = admin ? limits_.total : limits_.total - limits_.admin_reserve;
  if (total_ >= cap) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the server has too many open streams (limit ", cap,
                     admin ? "" : " for non-admin clients", "); retry later"));
  }
  ++active_[client];
  ++total_;
  return Slot(this, client);
}

int StreamLimiter::Active(const std::string& client) {
  MutexLock lock(&mu_);
  auto it = active_.find(client);
  return it == active_.end() ? 0 : it->second;
}

int StreamLimiter::Total() {
  MutexLock lock(&mu_);
  return total_;
}

void StreamLimiter::Release(const std::string& client) {
  MutexLock lock(&mu_);
  auto it = active_.find(client);
  if (it == active_.end()) return;
  --total_;
  if (--it->second <= 0) active_.erase(it);
}

}  // namespace kiln::service
