// kiln::HeapWarmer: a helper thread that faults in the heap's fresh pages
// before the threads that allocate them touch them.
//
// On the VMs kiln is measured on, a page fault costs 5-20 us (the exception
// leaves and re-enters the guest), and a no-op of a large graph touches
// ~9,000 fresh heap pages: a third of its time was spent in faults.
// MADV_POPULATE_WRITE maps a range in one call at under 1 us a page, and on
// another core. glibc's main heap grows by moving the program break (sbrk)
// by the request plus M_TOP_PAD; the warmer watches the break and populates
// every page between the heap's start and it, from the bottom up (the order
// in which malloc carves the top chunk), so RSS grows by at most the spare
// top that malloc keeps anyway.
//
// Only the main arena is watched: a process that wants all of its
// allocations warmed sets M_ARENA_MAX to 1 before its threads allocate.
// Without MADV_POPULATE_WRITE (Linux < 5.14) or under a sanitizer (whose
// allocator does not use the break) the warmer does nothing. Warming is
// purely an optimisation: no memory content is changed.
#ifndef KILN_BASE_HEAP_WARMER_H_
#define KILN_BASE_HEAP_WARMER_H_

#include <atomic>
#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"

namespace kiln {

class HeapWarmer {
 public:
  // Starts the thread (when warming can work here).
  HeapWarmer();
  // Stops and joins it.
  ~HeapWarmer();
  // Ends the warming (the thread exits soon; the destructor joins it):
  // for a phase that allocates blocks it touches only in part, which the
  // warmer would make resident in full. Thread-safe, cheap once stopped.
  void Stop();
  HeapWarmer(const HeapWarmer&) = delete;
  HeapWarmer& operator=(const HeapWarmer&) = delete;

  // Whether the thread runs (false: nothing to warm here).
  bool active() const { return thread_.joinable(); }
  // Bytes populated so far (for tests and profiles).
  uint64_t populated_bytes() const;

 private:
  void Loop(uintptr_t from);
  // Populates [from, to) in steps short enough that a concurrent brk or
  // mmap, which waits for each step, is not held up; false once stopped.
  bool Populate(uintptr_t from, uintptr_t to);

  mutable Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stopped_{false};  // stop_, read without mu_
  uint64_t populated_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace kiln

#endif  // KILN_BASE_HEAP_WARMER_H_
