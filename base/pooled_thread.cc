#include "base/pooled_thread.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>
#include <vector>

#include "base/mutex.h"

namespace kiln {

struct PooledThread::Job {
  std::function<void()> fn;
  sigset_t mask;  // the constructing thread's
  Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
};

namespace {

using Job = PooledThread::Job;

// Blocks every signal in the calling thread; the previous mask to `old`.
void BlockAll(sigset_t* old) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, old);
}

class Pool {
 public:
  static Pool* Get() {
    // Never destroyed: idle threads wait on its workers' locks for as long
    // as the process lives.
    static Pool* const pool = new Pool;
    return pool;
  }

  // Hands `job` to an idle thread, or starts one.
  void Start(std::shared_ptr<Job> job) {
    Worker* worker = nullptr;
    if (getpid() == pid_) {
      MutexLock lock(&mu_);
      if (!idle_.empty()) {
        worker = idle_.back();
        idle_.pop_back();
      }
    }
    if (worker != nullptr) {
      MutexLock lock(&worker->mu);
      worker->job = std::move(job);
      return;
    }
    auto fresh = std::make_unique<Worker>();
    {
      MutexLock lock(&fresh->mu);
      fresh->job = std::move(job);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    // Started with every signal blocked: an idle thread never takes a
    // signal meant for the process; a job sets its own mask.
    sigset_t old;
    BlockAll(&old);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, &Pool::Loop, fresh.get());
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      // As std::thread does when it cannot start one.
      throw std::system_error(rc, std::generic_category(), "PooledThread");
    }
    fresh.release();  // owned by its thread from now on
  }

  int Idle() {
    MutexLock lock(&mu_);
    return static_cast<int>(idle_.size());
  }

 private:
  struct Worker {
    Mutex mu;
    std::shared_ptr<Job> job ABSL_GUARDED_BY(mu);
  };

  Pool() : pid_(getpid()) {}

  // Back to the idle list; false if enough wait already (or this is a
  // forked child's thread, which no pool of the child lists).
  bool Park(Worker* worker) {
    MutexLock lock(&mu_);
    if (getpid() != pid_ ||
        static_cast<int>(idle_.size()) >= PooledThread::kMaxIdle) {
      return false;
    }
    idle_.push_back(worker);
    return true;
  }

  static void* Loop(void* arg) {
    Worker* worker = static_cast<Worker*>(arg);
    while (true) {
      std::shared_ptr<Job> job;
      {
        MutexLock lock(&worker->mu);
        worker->mu.Await([worker]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return worker->job != nullptr;
        });
        job = std::move(worker->job);
      }
      pthread_sigmask(SIG_SETMASK, &job->mask, nullptr);
      job->fn();
      job->fn = nullptr;  // its captures go before the joiner wakes
      sigset_t ignored;
      BlockAll(&ignored);
      {
        MutexLock lock(&job->mu);
        job->done = true;
      }
      job.reset();
      if (!Get()->Park(worker)) {
        delete worker;
        return nullptr;
      }
    }
  }

  const pid_t pid_;
  Mutex mu_;
  std::vector<Worker*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

PooledThread::PooledThread(std::function<void()> fn)
    : job_(std::make_shared<Job>()) {
  job_->fn = std::move(fn);
  pthread_sigmask(SIG_SETMASK, nullptr, &job_->mask);
  Pool::Get()->Start(job_);
}

PooledThread::~PooledThread() {
  if (joinable()) join();
}

PooledThread::PooledThread(PooledThread&& other) noexcept
    : job_(std::move(other.job_)) {}

PooledThread& PooledThread::operator=(PooledThread&& other) noexcept {
  if (this != &other) {
    if (joinable()) join();
    job_ = std::move(other.job_);
  }
  return *this;
}

void PooledThread::join() {
  if (job_ == nullptr) return;
  {
    MutexLock lock(&job_->mu);
    job_->mu.Await([this]()
                       ABSL_NO_THREAD_SAFETY_ANALYSIS { return job_->done; });
  }
  job_.reset();
}

int PooledThread::IdleForTesting() { return Pool::Get()->Idle(); }

}  // namespace kiln
