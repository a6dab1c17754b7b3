#include "engine/scheduler/cancel_signal.h"

#include <utility>

namespace kiln {

int CancelSignal::OnCancel(std::function<void()> fn) {
  {
    MutexLock lock(&mu_);
    if (!cancelled_) {
      int id = ++next_id_;
      callbacks_[id] = std::move(fn);
      return id;
    }
  }
  fn();
  return 0;
}

void CancelSignal::RemoveCallback(int id) {
  MutexLock lock(&mu_);
  callbacks_.erase(id);
  // A Cancel() on another thread may be running the callbacks right now;
  // whatever they use must stay alive until they return.
  mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !running_; });
}

void CancelSignal::Cancel() {
  std::map<int, std::function<void()>> fns;
  {
    MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    running_ = true;
    fns.swap(callbacks_);
  }
  for (auto& [id, fn] : fns) fn();
  MutexLock lock(&mu_);
  running_ = false;
}

void CancelSignal::CommandDone() {
  std::function<void()> fn;
  {
    MutexLock lock(&mu_);
    fn.swap(command_done_);
  }
  if (fn) fn();
}

void CancelSignal::OnCommandDone(std::function<void()> fn) {
  MutexLock lock(&mu_);
  command_done_ = std::move(fn);
}

bool CancelSignal::cancelled() const {
  MutexLock lock(&mu_);
  return cancelled_;
}

}  // namespace kiln
