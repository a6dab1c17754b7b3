#include "engine/service/admission_gate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kiln::service {

AdmissionGate::AdmissionGate(int capacity) : capacity_(std::max(1, capacity)) {}

AdmissionGate::Pass& AdmissionGate::Pass::operator=(Pass&& other) noexcept {
  if (this != &other) {
    Release();
    gate_ = other.gate_;
    other.gate_ = nullptr;
  }
  return *this;
}

void AdmissionGate::Pass::Release() {
  if (gate_ != nullptr) {
    gate_->Leave();
    gate_ = nullptr;
  }
}

absl::Status AdmissionGate::Enter(absl::string_view what, absl::Time deadline,
                                  const std::function<bool()>& cancelled,
                                  Pass* pass, absl::Duration poll) {
  MutexLock lock(&mu_);
  if (queue_.empty() && inside_ < capacity_) {  // nobody waits: go in
    ++inside_;
    *pass = Pass(this);
    return absl::OkStatus();
  }
  const auto me = queue_.insert(queue_.end(), Waiter{});
  auto may_enter = [this, me]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return inside_ < capacity_ && me == queue_.begin();
  };
  absl::Status status;
  // A place may free after the deadline passed but before this waiter
  // looked again: check both ends of every wait, so a caller that is gone
  // never enters.
  while (!mu_.AwaitWithDeadline(may_enter,
                                std::min(deadline, absl::Now() + poll)) ||
         absl::Now() >= deadline || (cancelled && cancelled())) {
    if (absl::Now() >= deadline) {
      status = absl::DeadlineExceededError(
          absl::StrCat(what, ": the deadline passed while waiting for one of ",
                       capacity_, " places"));
      break;
    }
    if (cancelled && cancelled()) {
      status = absl::CancelledError(
          absl::StrCat(what, ": cancelled while waiting for a place"));
      break;
    }
  }
  // Leaving the line, in or out, lets the next caller reach the front.
  queue_.erase(me);
  if (!status.ok()) return status;
  ++inside_;
  *pass = Pass(this);
  return absl::OkStatus();
}

void AdmissionGate::Leave() {
  MutexLock lock(&mu_);
  --inside_;
}

int AdmissionGate::inside() const {
  MutexLock lock(&mu_);
  return inside_;
}

int AdmissionGate::waiting() const {
  MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace kiln::service
