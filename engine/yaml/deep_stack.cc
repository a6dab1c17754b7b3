#include "engine/yaml/deep_stack.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"

extern "C" void* __libc_stack_end;  // glibc (ld.so): the main stack's top

namespace kiln::yaml {
namespace {

constexpr size_t kParserStackBytes = 16 << 20;

// A function to run, with the size of the input it parses.
struct Job {
  absl::FunctionRef<void()> fn;
  size_t input_bytes;
};

void* RunJobThread(void* arg) {
  static_cast<Job*>(arg)->fn();
  return nullptr;
}

// Runs one job on a new thread with a kParserStackBytes stack.
absl::Status RunOnNewThread(Job* job) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kParserStackBytes);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, RunJobThread, job);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the YAML parser thread: ", strerror(rc)));
  }
  pthread_join(thread, nullptr);
  return absl::OkStatus();
}

// Parser threads kept for reuse. Starting a thread per parse costs about
// as much as parsing a small file (the clone, and the pages of its fresh
// stack faulted in again); a render reads a dozen files, a run's decode
// several. Up to kMaxWorkers threads wait, each with its big stack, for one
// job at a time; a parse that finds them all busy starts a thread of its
// own as before, and so does a large input (kMaxPooledBytes). Workers
// live as long as the process (the pool is never destroyed: threads
// blocked on its locks outlive static destructors).
class ParserPool {
 public:
  static constexpr int kMaxWorkers = 4;

  static ParserPool* Get() {
    static ParserPool* const pool = new ParserPool;
    return pool;
  }

  // Larger inputs get a thread of their own. What a parse allocates comes
  // from its thread's malloc arena and returns there when the caller frees
  // the tree; a worker keeps its arena for good, so the tree of a large
  // file (a 10,000-task pipeline: ~70 MB) would stay reserved for the
  // worker's next parses instead of going back to the rest of the process.
  // A thread that ends hands its arena on to the next thread started.
  static constexpr size_t kMaxPooledBytes = 64 << 10;

  absl::Status Run(Job* job) {
    // A child forked from a multi-threaded process has none of its
    // parent's workers (and may hold a copy of a lock taken at the fork).
    if (job->input_bytes > kMaxPooledBytes || getpid() != pid_) {
      return RunOnNewThread(job);
    }
    Worker* worker = Take();
    if (worker == nullptr) return RunOnNewThread(job);
    {
      kiln::MutexLock lock(&worker->mu);
      worker->job = job;
      worker->mu.Await([worker]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return worker->job == nullptr;
      });
    }
    Give(worker);
    return absl::OkStatus();
  }

 private:
  struct Worker {
    kiln::Mutex mu;
    Job* job ABSL_GUARDED_BY(mu) = nullptr;  // set to run, cleared when done
  };

  ParserPool() : pid_(getpid()) {}

  // An idle worker, a new one, or nullptr when kMaxWorkers are busy (or a
  // thread cannot be started).
  Worker* Take() {
    kiln::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Worker* worker = idle_.back();
      idle_.pop_back();
      return worker;
    }
    if (started_ >= kMaxWorkers) return nullptr;
    auto worker = std::make_unique<Worker>();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kParserStackBytes);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, &ParserPool::Loop, worker.get());
    pthread_attr_destroy(&attr);
    if (rc != 0) return nullptr;
    ++started_;
    return worker.release();  // owned by its thread, which never ends
  }

  void Give(Worker* worker) {
    kiln::MutexLock lock(&mu_);
    idle_.push_back(worker);
  }

  static void* Loop(void* arg) {
    Worker* worker = static_cast<Worker*>(arg);
    while (true) {
      Job* job;
      {
        kiln::MutexLock lock(&worker->mu);
        worker->mu.Await([worker]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return worker->job != nullptr;
        });
        job = worker->job;
      }
      job->fn();  // the caller waits until job is cleared
      kiln::MutexLock lock(&worker->mu);
      worker->job = nullptr;
    }
  }

  const pid_t pid_;
  kiln::Mutex mu_;
  std::vector<Worker*> idle_ ABSL_GUARDED_BY(mu_);
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

// The stack a parse may use. yaml-cpp 0.7 recurses once per nesting level
// and refuses nesting deeper than 500 levels itself, whatever our depth
// limit: at that depth a parse used ~216 KB of stack (block mappings; flow
// sequences ~157 KB), alike in the opt, ASan and plain builds. Four times
// that is left free before a parse runs on the caller's own thread.
constexpr size_t kInlineStackBytes = 1 << 20;

// The low end of the main thread's stack: its top (glibc's
// __libc_stack_end, which pthread_getattr_np uses as well) less the stack
// rlimit (8 MiB if unlimited), read at each call (a process may lower it).
// pthread_getattr_np would read all of /proc/self/maps for it (~60 us, a
// tenth of a small render's parsing).
uintptr_t MainStackLow() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_STACK, &rl) != 0) return 0;
  const uintptr_t size =
      rl.rlim_cur == RLIM_INFINITY ? uintptr_t{8} << 20 : rl.rlim_cur;
  const uintptr_t top = reinterpret_cast<uintptr_t>(__libc_stack_end);
  return top > size ? top - size : 0;
}

// The low end of another thread's stack (0 if unknown).
uintptr_t ThreadStackLow() {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
  void* addr = nullptr;
  size_t size = 0;
  int rc = pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_destroy(&attr);
  return rc == 0 ? reinterpret_cast<uintptr_t>(addr) : 0;
}

// Bytes of the calling thread's stack below this frame (0 if unknown).
// Which thread this is, and another thread's stack, are looked up once per
// thread and process (the thread that forks is its child's main thread).
size_t StackLeft() {
  struct Seen {
    pid_t pid = 0;
    bool main = false;
    uintptr_t low = 0;
  };
  thread_local Seen seen;
  const pid_t pid = getpid();
  if (seen.pid != pid) {
    seen.pid = pid;
    seen.main = pid == static_cast<pid_t>(syscall(SYS_gettid));
    seen.low = seen.main ? 0 : ThreadStackLow();
  }
  const uintptr_t low = seen.main ? MainStackLow() : seen.low;
  // The real frame, not a local: ASan may place locals on a fake stack.
  const uintptr_t here =
      reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return low != 0 && here > low ? here - low : 0;
}

}  // namespace

absl::Status RunOnDeepStack(absl::FunctionRef<void()> fn, size_t input_bytes) {
  // Enough stack here: run on this thread. Handing a small file to a
  // parser thread and back cost two context switches per file (a
  // 20-resource render reads 22 files: ~1.2 ms of its ~6 ms).
  if (StackLeft() >= kInlineStackBytes) {
    fn();
    return absl::OkStatus();
  }
  Job job{fn, input_bytes};
  return ParserPool::Get()->Run(&job);
}

}  // namespace kiln::yaml
