#include "base/heap_warmer.h"

#include <errno.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "absl/time/clock.h"
#include "absl/time/time.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KILN_HEAP_WARMER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define KILN_HEAP_WARMER_SANITIZED 1
#endif
#endif

namespace kiln {

namespace {

constexpr uintptr_t kPage = 4096;
// One madvise call: ~64 pages, tens of microseconds.
constexpr uintptr_t kStep = 256 << 10;
// How often the break is looked at: soon after it moved, rarely when it
// has not for a while.
constexpr absl::Duration kMinPoll = absl::Microseconds(100);
constexpr absl::Duration kMaxPoll = absl::Milliseconds(5);

uintptr_t Break() { return reinterpret_cast<uintptr_t>(sbrk(0)); }

uintptr_t PageDown(uintptr_t a) { return a & ~(kPage - 1); }

// Whether this kernel populates on request (probed on one private page).
bool CanPopulate() {
  void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  const bool ok = madvise(p, kPage, MADV_POPULATE_WRITE) == 0;
  munmap(p, kPage);
  return ok;
}

}  // namespace

HeapWarmer::HeapWarmer() {
#ifndef KILN_HEAP_WARMER_SANITIZED
  if (!CanPopulate()) return;
  // The main arena's heap: everything sbrk gave it lies below the break.
  const uintptr_t brk = Break();
  const struct mallinfo2 info = mallinfo2();
  if (info.arena == 0 || info.arena > brk) return;
  thread_ =
      std::thread([this, from = PageDown(brk - info.arena)] { Loop(from); });
#endif
}

HeapWarmer::~HeapWarmer() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void HeapWarmer::Stop() {
  if (stopped_.exchange(true)) return;
  MutexLock lock(&mu_);
  stop_ = true;
}

uint64_t HeapWarmer::populated_bytes() const {
  MutexLock lock(&mu_);
  return populated_;
}

bool HeapWarmer::Populate(uintptr_t from, uintptr_t to) {
  for (uintptr_t at = from; at < to; at += kStep) {
    {
      MutexLock lock(&mu_);
      if (stop_) return false;
    }
    const uintptr_t len = std::min(kStep, to - at);
    // A range the heap gave back meanwhile fails (ENOMEM): skipped. Pages
    // already present cost a page-table walk.
    if (madvise(reinterpret_cast<void*>(at), len, MADV_POPULATE_WRITE) == 0) {
      MutexLock lock(&mu_);
      populated_ += len;
    }
  }
  return true;
}

void HeapWarmer::Loop(uintptr_t from) {
  // Everything below `done` was populated when the break was last seen.
  uintptr_t done = from;
  absl::Duration poll = kMinPoll;
  while (true) {
    // The break glibc last set (a word read; a stale value only delays).
    const uintptr_t brk = PageDown(Break());
    if (brk > done) {
      if (!Populate(done, brk)) return;
      done = brk;
      poll = kMinPoll;
    } else {
      // Trimmed (the heap shrank) or unchanged.
      done = std::min(done, brk);
      poll = std::min(poll * 2, kMaxPoll);
    }
    MutexLock lock(&mu_);
    if (mu_.AwaitWithDeadline(
            [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stop_; },
            absl::Now() + poll)) {
      return;
    }
  }
}

}  // namespace kiln
