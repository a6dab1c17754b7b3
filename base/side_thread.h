// kiln::SideThread: one extra thread that shares loops with its owner.
//
// ForEach(n, fn) calls fn(i) once for every i in [0, n): the calling thread
// and the side thread take indices from one counter, so a loop of blocking
// calls (a cache hit's file reads and stats) uses a second core while the
// caller works too. It returns when every call has returned; what fn wrote
// is then visible to the caller. Loops shorter than kMinParallel run on the
// caller alone (waking the side thread costs more than they do). The
// thread starts at the first loop it takes part in and is joined by the
// destructor.
//
// Thread-safety: ForEach is called by one thread at a time; fn must be
// safe to call from two threads at once.
#ifndef KILN_BASE_SIDE_THREAD_H_
#define KILN_BASE_SIDE_THREAD_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "base/mutex.h"

namespace kiln {

class SideThread {
 public:
  static constexpr size_t kMinParallel = 8;

  SideThread() = default;
  ~SideThread();
  SideThread(const SideThread&) = delete;
  SideThread& operator=(const SideThread&) = delete;

  void ForEach(size_t n, absl::FunctionRef<void(size_t)> fn);

  // How many loops the side thread took part in (for tests).
  uint64_t shared_loops() const;

 private:
  void Loop();
  // Calls fn for the indices it takes from next_ until none are left.
  void Drain(absl::FunctionRef<void(size_t)> fn, size_t n);

  mutable Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t job_ ABSL_GUARDED_BY(mu_) = 0;   // the loop being shared
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;  // the last loop the side finished
  // The loop's function and length, set before job_ moves on.
  const absl::FunctionRef<void(size_t)>* fn_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t n_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<size_t> next_{0};
  std::thread thread_;  // started by the first shared loop
};

}  // namespace kiln

#endif  // KILN_BASE_SIDE_THREAD_H_
