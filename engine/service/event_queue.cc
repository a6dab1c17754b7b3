#include "engine/service/event_queue.h"

#include "absl/time/clock.h"

namespace kiln::service {

void EventQueue::Push(const v1::RunEvent& event) {
  MutexLock lock(&mu_);
  if (overflowed_ || closed_) return;
  if (events_.size() >= capacity_) {
    overflowed_ = true;
    return;
  }
  events_.push_back(event);
}

void EventQueue::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
}

EventQueue::PopResult EventQueue::Pop(absl::Duration timeout,
                                      v1::RunEvent* event) {
  MutexLock lock(&mu_);
  auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !events_.empty() || overflowed_ || closed_;
  };
  if (!mu_.AwaitWithDeadline(ready, absl::Now() + timeout)) {
    return PopResult::kTimeout;
  }
  if (!events_.empty()) {
    *event = std::move(events_.front());
    events_.pop_front();
    return PopResult::kEvent;
  }
  return overflowed_ ? PopResult::kOverflow : PopResult::kClosed;
}

}  // namespace kiln::service
