#include "base/side_thread.h"

namespace kiln {

SideThread::~SideThread() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t SideThread::shared_loops() const {
  MutexLock lock(&mu_);
  return done_;
}

void SideThread::Drain(absl::FunctionRef<void(size_t)> fn, size_t n) {
  for (size_t i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) fn(i);
}

void SideThread::ForEach(size_t n, absl::FunctionRef<void(size_t)> fn) {
  if (n < kMinParallel) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  uint64_t job;
  {
    MutexLock lock(&mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    job = ++job_;
  }
  Drain(fn, n);
  MutexLock lock(&mu_);
  // The side thread may still be in its last call, or not have woken yet:
  // either way fn_ must stay valid until it says it is done.
  mu_.Await([this, job]()
                ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_ == job; });
  fn_ = nullptr;
}

void SideThread::Loop() {
  uint64_t seen = 0;
  while (true) {
    const absl::FunctionRef<void(size_t)>* fn;
    size_t n;
    {
      MutexLock lock(&mu_);
      mu_.Await([this, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stop_ || job_ != seen;
      });
      if (job_ == seen) return;  // and stop_: no loop left unshared
      seen = job_;
      fn = fn_;
      n = n_;
    }
    Drain(*fn, n);
    MutexLock lock(&mu_);
    done_ = seen;
  }
}

}  // namespace kiln
