#include "engine/service/event_queue.h"

#include "absl/time/clock.h"

namespace kiln::service {
namespace {

// What one queued event costs beyond its serialized size.
constexpr size_t kEventOverhead = 64;

}  // namespace

bool ByteBudget::Take(int64_t n) {
  int64_t used = used_.load();
  do {
    if (used + n > limit_) return false;
  } while (!used_.compare_exchange_weak(used, used + n));
  return true;
}

EventQueue::~EventQueue() {
  if (budget_ != nullptr) budget_->Give(static_cast<int64_t>(bytes_));
}

void EventQueue::OverflowLocked() {
  overflowed_ = true;
  if (budget_ != nullptr) budget_->Give(static_cast<int64_t>(bytes_));
  events_.clear();
  bytes_ = 0;
  if (on_overflow_) {
    std::function<void()> action = std::move(on_overflow_);
    on_overflow_ = nullptr;
    action();
  }
}

void EventQueue::Push(const v1::RunEvent& event) {
  const size_t size = event.ByteSizeLong() + kEventOverhead;
  MutexLock lock(&mu_);
  if (overflowed_ || closed_) return;
  if (events_.size() >= max_events_ || bytes_ + size > max_bytes_ ||
      (budget_ != nullptr && !budget_->Take(static_cast<int64_t>(size)))) {
    OverflowLocked();
    return;
  }
  events_.emplace_back(event, size);
  bytes_ += size;
}

void EventQueue::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
}

void EventQueue::SetOverflowAction(std::function<void()> action) {
  MutexLock lock(&mu_);
  on_overflow_ = std::move(action);
}

void EventQueue::ClearOverflowAction() {
  MutexLock lock(&mu_);
  on_overflow_ = nullptr;
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
    *event = std::move(events_.front().first);
    size_t size = events_.front().second;
    events_.pop_front();
    bytes_ -= size;
    if (budget_ != nullptr) budget_->Give(static_cast<int64_t>(size));
    return PopResult::kEvent;
  }
  return overflowed_ ? PopResult::kOverflow : PopResult::kClosed;
}

}  // namespace kiln::service
