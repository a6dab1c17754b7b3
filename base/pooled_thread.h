// kiln::PooledThread: std::thread's start and join, on a thread kept for
// reuse.
//
// A kiln serve under load starts two engine threads per run (its event
// pump and its scheduler) and ends them a few milliseconds later; the
// clone, the stack's mapping, and the TLB shootdowns of giving the stack
// back were ~15 % of the server's CPU at 200 clients (bench/README.md B9).
// PooledThread(fn) hands fn to an idle thread of a process-wide pool, or
// starts one; join() waits until fn has returned. A thread that finishes
// waits for the next job while fewer than kMaxIdle wait, and ends
// otherwise.
//
// As for a new std::thread, fn runs with the signal mask of the thread
// that constructed the PooledThread (set again for every job: a reused
// thread does not keep its last job's mask). A process forked from one
// with pooled threads has none of them: its PooledThreads start threads of
// their own.
//
// Thread-safety: like std::thread (one thread calls join()).
#ifndef KILN_BASE_POOLED_THREAD_H_
#define KILN_BASE_POOLED_THREAD_H_

#include <functional>
#include <memory>

namespace kiln {

class PooledThread {
 public:
  static constexpr int kMaxIdle = 32;

  PooledThread() = default;
  explicit PooledThread(std::function<void()> fn);
  // Joins if joinable (std::thread would terminate instead).
  ~PooledThread();
  PooledThread(PooledThread&& other) noexcept;
  // Joins the job this object held, if any, before taking other's.
  PooledThread& operator=(PooledThread&& other) noexcept;
  PooledThread(const PooledThread&) = delete;
  PooledThread& operator=(const PooledThread&) = delete;

  bool joinable() const { return job_ != nullptr; }
  void join();

  // Threads of the pool waiting for a job now (for tests).
  static int IdleForTesting();

  struct Job;  // the function and its completion (pooled_thread.cc)

 private:
  std::shared_ptr<Job> job_;
};

}  // namespace kiln

#endif  // KILN_BASE_POOLED_THREAD_H_
