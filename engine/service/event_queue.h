// EventQueue: the bounded hand-off between the engine's event callbacks and
// one WatchRun stream.
//
// Push never blocks (it runs on an engine thread). The queue is bounded in
// events and in bytes, and all queues together by a shared ByteBudget. When
// a bound is reached the watcher is too slow: the queue is marked
// overflowed, its events are dropped (their memory freed at once), the
// overflow action runs (WatchRun cancels the stream, which also frees a
// writer blocked on a client that stopped reading), and Pop reports
// kOverflow. The client resumes from the last sequence it received, so
// nothing is lost. Memory per watcher is therefore bounded by
// `max_bytes` (plus one event).
//
// Thread-safety: every method may be called from any thread.
#ifndef KILN_ENGINE_SERVICE_EVENT_QUEUE_H_
#define KILN_ENGINE_SERVICE_EVENT_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "base/mutex.h"
#include "kiln/v1/run.pb.h"

namespace kiln::service {

// Bytes held by all queues of a server.
class ByteBudget {
 public:
  explicit ByteBudget(int64_t limit) : limit_(limit) {}
  // False (and nothing taken) if `n` more bytes would pass the limit.
  bool Take(int64_t n);
  void Give(int64_t n) { used_.fetch_sub(n); }
  int64_t used() const { return used_.load(); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

class EventQueue {
 public:
  // `budget` may be null (no shared bound).
  EventQueue(size_t max_events, size_t max_bytes,
             std::shared_ptr<ByteBudget> budget = nullptr)
      : max_events_(max_events),
        max_bytes_(max_bytes),
        budget_(std::move(budget)) {}
  explicit EventQueue(size_t max_events)
      : EventQueue(max_events, SIZE_MAX, nullptr) {}
  ~EventQueue();

  void Push(const v1::RunEvent& event);
  // Wakes Pop callers; later Pops return kClosed once drained.
  void Close();
  // Runs (under the queue's lock, at most once) when the queue overflows;
  // cleared by ClearOverflowAction, after which it never runs.
  void SetOverflowAction(std::function<void()> action);
  void ClearOverflowAction();

  enum class PopResult { kEvent, kTimeout, kOverflow, kClosed };
  // Waits at most `timeout` for the next event.
  PopResult Pop(absl::Duration timeout, v1::RunEvent* event);

  size_t bytes() {
    MutexLock lock(&mu_);
    return bytes_;
  }

 private:
  void OverflowLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_events_;
  const size_t max_bytes_;
  const std::shared_ptr<ByteBudget> budget_;
  Mutex mu_;
  std::deque<std::pair<v1::RunEvent, size_t>> events_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_overflow_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_EVENT_QUEUE_H_
