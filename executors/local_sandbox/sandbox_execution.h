// The executor-side half of one sandboxed command: one thread that reads the
// output pipes, delivers lines, enforces the timeout, the cancel request and
// the log limit, reaps the sandbox's init and turns what it reported into an
// ExecResult. Internal to LocalSandboxExecutor.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_EXECUTION_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_EXECUTION_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "executors/executor.h"
#include "executors/local_sandbox/cgroup.h"
#include "executors/local_sandbox/network_pool.h"

namespace kiln {
namespace sandbox {

struct ExecutionSetup {
  pid_t init_pid = -1;
  int pidfd = -1;      // of init; owned
  int stdout_fd = -1;  // read ends; owned
  int stderr_fd = -1;
  int report_fd = -1;
  OutputSink* sink = nullptr;
  std::string argv0;
  absl::Duration timeout = absl::ZeroDuration();  // zero = none
  absl::Duration kill_grace = absl::Seconds(2);
  uint64_t max_log_bytes = 0;  // zero = unlimited
  size_t max_line_bytes = 64 * 1024;
  std::unique_ptr<TaskCgroup> cgroup;  // null: no cgroup limits
  // The pooled network namespace the task ran in (null: its own new one,
  // or the host's); given back once init is reaped.
  std::unique_ptr<NetworkNamespacePool::Lease> network;
  std::string limits_note;  // appended to the result message when not empty
  absl::Time start;
};

class SandboxExecution : public Execution {
 public:
  // Starts the supervising thread.
  explicit SandboxExecution(ExecutionSetup setup);
  // Cancels and waits if Wait() was never called.
  ~SandboxExecution() override;

  v1::ExecResult Wait() override;
  void Cancel() override;
  // Cancel() with `grace` between SIGTERM and SIGKILL instead of the
  // request's kill_grace (a kubelet's deletion grace period); a shorter
  // grace after an earlier cancel brings the SIGKILL forward.
  void CancelWithGrace(absl::Duration grace);

 private:
  void Supervise();
  void Signal(int sig);
  v1::ExecResult BuildResult(int wait_status, const struct rusage& usage);

  ExecutionSetup setup_;
  int wake_fd_ = -1;  // eventfd; Cancel() writes it
  Mutex mu_;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration cancel_grace_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();
  std::thread supervisor_;
  bool waited_ = false;
  v1::ExecResult result_;  // written by the supervisor before it ends

  // Supervisor-thread state.
  v1::ExecStatus reason_ = v1::EXEC_STATUS_UNSPECIFIED;
  bool killed_ = false;
  uint64_t log_bytes_ = 0;
};

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_EXECUTION_H_
