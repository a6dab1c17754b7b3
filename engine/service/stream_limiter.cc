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
    const std::string& client) {
  MutexLock lock(&mu_);
  int& count = active_[client];
  if (count >= max_per_client_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open streams for this client (limit ", max_per_client_, ")"));
  }
  ++count;
  return Slot(this, client);
}

int StreamLimiter::Active(const std::string& client) {
  MutexLock lock(&mu_);
  auto it = active_.find(client);
  return it == active_.end() ? 0 : it->second;
}

void StreamLimiter::Release(const std::string& client) {
  MutexLock lock(&mu_);
  auto it = active_.find(client);
  if (it == active_.end()) return;
  if (--it->second <= 0) active_.erase(it);
}

}  // namespace kiln::service
