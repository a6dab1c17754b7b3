// CancelSignal: a one-way cancellation signal with callbacks.
#ifndef KILN_ENGINE_SCHEDULER_CANCEL_SIGNAL_H_
#define KILN_ENGINE_SCHEDULER_CANCEL_SIGNAL_H_

#include <functional>
#include <map>

#include "base/mutex.h"

namespace kiln {

// A one-way cancellation signal with callbacks. Thread-safe.
class CancelSignal {
 public:
  // Runs fn now if already cancelled, else when Cancel() is first called.
  // Returns an id for RemoveCallback.
  int OnCancel(std::function<void()> fn);
  // After it returns, the callback is not running and never will.
  void RemoveCallback(int id);
  void Cancel();
  bool cancelled() const;

  // The attempt's command has ended: what remains (capturing its outputs,
  // recording) is the engine's own work. Runs the callback given to
  // OnCommandDone, once; later calls do nothing.
  void CommandDone();
  // Set before the attempt starts (the scheduler frees the task's
  // parallelism slot).
  void OnCommandDone(std::function<void()> fn);

 private:
  mutable Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // Cancel() is calling back
  int next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
  std::function<void()> command_done_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln

#endif  // KILN_ENGINE_SCHEDULER_CANCEL_SIGNAL_H_
