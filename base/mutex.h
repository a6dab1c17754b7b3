// kiln::Mutex: an annotated mutex with absl::Mutex-style Await, built on
// std::mutex so ThreadSanitizer sees every happens-before edge.
//
// Why not absl::Mutex: Debian's Abseil is not built with TSan annotations, so
// under --config=tsan its internal synchronization is invisible and every
// access it guards looks racy. std::mutex goes through pthread, which TSan
// intercepts. Clang's -Wthread-safety still checks ABSL_GUARDED_BY uses.
#ifndef KILN_BASE_MUTEX_H_
#define KILN_BASE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace kiln {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  // Wakes every Await()er to re-check its predicate, like absl::Mutex.
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    bool wake = waiters_ > 0;
    mu_.unlock();
    if (wake) cv_.notify_all();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  // REQUIRES: held. Releases the lock until pred() holds (re-checked after
  // every Unlock() by another thread), then returns with it held.
  template <typename Pred>
  void Await(Pred pred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    // Waiting releases the lock: others must re-check, as after Unlock().
    if (waiters_ > 0) cv_.notify_all();
    ++waiters_;
    cv_.wait(lock, pred);
    --waiters_;
    lock.release();
  }

  // As Await, giving up at `deadline`; returns pred().
  template <typename Pred>
  bool AwaitWithDeadline(Pred pred, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    if (waiters_ > 0) cv_.notify_all();
    ++waiters_;
    bool ok;
    if (deadline == absl::InfiniteFuture()) {
      cv_.wait(lock, pred);
      ok = true;
    } else {
      ok = cv_.wait_until(lock, absl::ToChronoTime(deadline), pred);
    }
    --waiters_;
    lock.release();
    return ok;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiters_ = 0;  // guarded by mu_
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace kiln

#endif  // KILN_BASE_MUTEX_H_
