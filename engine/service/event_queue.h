// EventQueue: the bounded hand-off between the engine's event callbacks and
// one WatchRun stream.
//
// Push never blocks (it runs on an engine thread). When the queue is full
// the watcher is too slow: the event is dropped and the queue is marked
// overflowed. Events queued before the overflow are still delivered, in
// order and without gaps; then Pop reports kOverflow, and the service ends
// the stream so the client resumes from the last sequence it received.
// Memory per watcher is therefore bounded by `capacity` events.
//
// Thread-safety: Push, Pop and Close may be called from any thread.
#ifndef KILN_ENGINE_SERVICE_EVENT_QUEUE_H_
#define KILN_ENGINE_SERVICE_EVENT_QUEUE_H_

#include <cstddef>
#include <deque>

#include "absl/time/time.h"
#include "engine/base/mutex.h"
#include "kiln/v1/run.pb.h"

namespace kiln::service {

class EventQueue {
 public:
  explicit EventQueue(size_t capacity) : capacity_(capacity) {}

  void Push(const v1::RunEvent& event);
  // Wakes Pop callers; later Pops return kClosed once drained.
  void Close();

  enum class PopResult { kEvent, kTimeout, kOverflow, kClosed };
  // Waits at most `timeout` for the next event.
  PopResult Pop(absl::Duration timeout, v1::RunEvent* event);

 private:
  const size_t capacity_;
  Mutex mu_;
  std::deque<v1::RunEvent> events_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_EVENT_QUEUE_H_
