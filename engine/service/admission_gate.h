// AdmissionGate: lets at most `capacity` callers into a section at once, in
// the order they arrived; the others wait, blocked, until a place frees,
// their call is cancelled or their deadline passes.
//
// kiln serve starts runs through one. Starting a run (validating, planning
// and recording it) is CPU work; two hundred clients submitting at once
// would otherwise run two hundred starts side by side on a few cores, each
// one delaying the events of the runs already going. With the starts
// bounded near the number of cores, a started run's events reach their
// watchers promptly and the queue stands where it belongs, in front of the
// start (bench/README.md, B9).
#ifndef KILN_ENGINE_SERVICE_ADMISSION_GATE_H_
#define KILN_ENGINE_SERVICE_ADMISSION_GATE_H_

#include <functional>
#include <list>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace kiln::service {

class AdmissionGate {
 public:
  // At least one place, whatever `capacity` says.
  explicit AdmissionGate(int capacity);
  AdmissionGate(const AdmissionGate&) = delete;
  AdmissionGate& operator=(const AdmissionGate&) = delete;

  // A place inside the gate, given back when destroyed.
  class Pass {
   public:
    Pass() = default;
    Pass(Pass&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Pass& operator=(Pass&& other) noexcept;
    ~Pass() { Release(); }
    bool held() const { return gate_ != nullptr; }

   private:
    friend class AdmissionGate;
    explicit Pass(AdmissionGate* gate) : gate_(gate) {}
    void Release();
    AdmissionGate* gate_ = nullptr;
  };

  // Waits for a place, in arrival order. `cancelled` (may be empty) is asked
  // at least every `poll` while waiting: when it returns true the wait ends
  // with CANCELLED; at `deadline` it ends with DEADLINE_EXCEEDED. `what`
  // names the request in those errors. After an error the caller holds no
  // place and the queue goes on without it.
  absl::Status Enter(absl::string_view what, absl::Time deadline,
                     const std::function<bool()>& cancelled, Pass* pass,
                     absl::Duration poll = absl::Milliseconds(50));

  int capacity() const { return capacity_; }
  // Callers inside and callers waiting now.
  int inside() const;
  int waiting() const;

 private:
  struct Waiter {};
  void Leave();

  const int capacity_;
  mutable Mutex mu_;
  int inside_ ABSL_GUARDED_BY(mu_) = 0;
  std::list<Waiter> queue_ ABSL_GUARDED_BY(mu_);  // the front enters next
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_ADMISSION_GATE_H_
