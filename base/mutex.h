// kiln::Mutex: an annotated mutex with absl::Mutex-style Await, built on
// std::mutex and std::condition_variable so ThreadSanitizer sees every
// happens-before edge.
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
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace kiln {

// Like absl::Mutex, the thread that lets go of the lock evaluates the
// conditions of the threads waiting in Await and wakes only those whose
// condition now holds: a lock taken and released for every task of a run
// does not wake every waiter each time only for it to sleep again.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    if (waiters_ != nullptr) SignalReady(nullptr);
    mu_.unlock();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  // REQUIRES: held. Releases the lock until pred() holds, then returns with
  // it held. pred() is evaluated with the lock held, by this thread or by
  // the thread releasing the lock: it must only read state the lock guards
  // (or atomics) and have no side effects.
  template <typename Pred>
  void Await(Pred pred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitWithDeadline(std::move(pred), absl::InfiniteFuture());
  }

  // As Await, giving up at `deadline`; returns pred().
  template <typename Pred>
  bool AwaitWithDeadline(Pred pred, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (Evaluate<Pred>(&pred)) return true;
    Waiter self;
    self.ready = &Evaluate<Pred>;
    self.pred = &pred;
    Link(&self);
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    const bool forever = deadline == absl::InfiniteFuture();
    const auto until = forever ? std::chrono::system_clock::time_point::max()
                               : absl::ToChronoTime(deadline);
    bool ok;
    while (true) {
      // Waiting lets go of the lock: whoever it kept waiting may go on.
      SignalReady(&self);
      auto signaled = [&self] { return self.signaled; };
      if (forever) {
        self.cv.wait(lock, signaled);
      } else if (!self.cv.wait_until(lock, until, signaled)) {
        ok = Evaluate<Pred>(&pred);
        break;
      }
      self.signaled = false;
      // Another thread may have taken the lock first and changed things.
      if (Evaluate<Pred>(&pred)) {
        ok = true;
        break;
      }
    }
    Unlink(&self);
    lock.release();
    return ok;
  }

 private:
  struct Waiter {
    bool (*ready)(void* pred) = nullptr;
    void* pred = nullptr;
    std::condition_variable cv;
    bool signaled = false;
    Waiter* prev = nullptr;
    Waiter* next = nullptr;
  };

  // Conditions name the caller's own lock; the analysis cannot see it is
  // this one.
  template <typename Pred>
  static bool Evaluate(void* pred) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return (*static_cast<Pred*>(pred))();
  }

  // REQUIRES: mu_ held (as the waiters' list itself).
  void Link(Waiter* w) {
    w->next = waiters_;
    if (waiters_ != nullptr) waiters_->prev = w;
    waiters_ = w;
  }
  void Unlink(Waiter* w) {
    if (w->prev != nullptr) w->prev->next = w->next;
    if (w->next != nullptr) w->next->prev = w->prev;
    if (waiters_ == w) waiters_ = w->next;
  }
  // REQUIRES: mu_ held. Wakes each waiter but `skip` whose condition holds
  // now. Notified with the lock held: a waiter that gives up at its
  // deadline unlinks itself (and its condition variable) under the lock.
  void SignalReady(const Waiter* skip) {
    for (Waiter* w = waiters_; w != nullptr; w = w->next) {
      if (w == skip || w->signaled || !w->ready(w->pred)) continue;
      w->signaled = true;
      w->cv.notify_one();
    }
  }

  std::mutex mu_;
  Waiter* waiters_ = nullptr;  // guarded by mu_
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
