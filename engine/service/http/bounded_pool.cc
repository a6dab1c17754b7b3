#include "engine/service/http/bounded_pool.h"

#include <utility>

namespace kiln::service::http {

BoundedPool::BoundedPool(size_t threads, size_t max_waiting)
    : max_waiting_(max_waiting < 1 ? 1 : max_waiting) {
  if (threads < 1) threads = 1;
  for (size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this] { Work(); });
}

BoundedPool::~BoundedPool() { shutdown(); }

void BoundedPool::enqueue(std::function<void()> fn) {
  {
    MutexLock lock(&mu_);
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return stopping_ || jobs_.size() < max_waiting_;
    });
    if (!stopping_) {
      jobs_.push_back(std::move(fn));
      return;
    }
  }
  fn();  // stopping: serve it here (it closes its socket)
}

void BoundedPool::shutdown() {
  {
    MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void BoundedPool::Work() {
  while (true) {
    std::function<void()> job;
    {
      MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !jobs_.empty();
      });
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace kiln::service::http
