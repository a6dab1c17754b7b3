// BoundedPool: the dashboard server's connection threads (an
// httplib::TaskQueue). `threads` connections are served at once and at most
// `max_waiting` accepted ones wait for a thread; past that, the accept loop
// blocks, so further clients wait in the kernel's listen backlog instead of
// costing the server memory or threads.
//
// Thread-safety: every method is thread-safe. shutdown() runs the waiting
// connections' jobs (each closes its socket) and joins the threads.
#ifndef KILN_ENGINE_SERVICE_HTTP_BOUNDED_POOL_H_
#define KILN_ENGINE_SERVICE_HTTP_BOUNDED_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "httplib.h"

namespace kiln::service::http {

class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t max_waiting);
  ~BoundedPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void Work();

  const size_t max_waiting_;
  Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace kiln::service::http

#endif  // KILN_ENGINE_SERVICE_HTTP_BOUNDED_POOL_H_
