#include "executors/local_sandbox/sandbox_execution.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "executors/local_sandbox/line_splitter.h"
#include "executors/local_sandbox/sandbox_child.h"

namespace kiln {
namespace sandbox {
namespace {

// After init is gone nobody should hold the pipes; a leaked copy elsewhere
// must not hang Wait() forever.
constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);

int PollTimeoutMs(absl::Time now, absl::Time until) {
  if (until == absl::InfiniteFuture()) return -1;
  if (until <= now) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(
      absl::Ceil(until - now, absl::Milliseconds(1))));
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

std::string ErrnoText(int error) { return std::strerror(error); }

}  // namespace

SandboxExecution::SandboxExecution(ExecutionSetup setup)
    : setup_(std::move(setup)) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  for (int fd : {setup_.stdout_fd, setup_.stderr_fd, setup_.report_fd}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  supervisor_ = std::thread([this] { Supervise(); });
}

SandboxExecution::~SandboxExecution() {
  if (!waited_) {
    Cancel();
    supervisor_.join();
  }
  CloseFd(&wake_fd_);
}

void SandboxExecution::Cancel() {
  MutexLock lock(&mu_);
  if (cancel_requested_) return;
  cancel_requested_ = true;
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // The counter cannot overflow with a single write; nothing to do.
  }
}

void SandboxExecution::CancelWithGrace(absl::Duration grace) {
  MutexLock lock(&mu_);
  cancel_requested_ = true;
  cancel_grace_ = std::min(cancel_grace_, grace);
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // As in Cancel().
  }
}

v1::ExecResult SandboxExecution::Wait() {
  waited_ = true;
  supervisor_.join();
  return result_;
}

void SandboxExecution::Signal(int sig) {
  syscall(SYS_pidfd_send_signal, setup_.pidfd, sig, nullptr, 0);
  if (sig == SIGKILL) killed_ = true;
}

void SandboxExecution::Supervise() {
  OutputSink* sink = setup_.sink;
  LineSplitter out(setup_.max_line_bytes, [sink](absl::string_view line) {
    sink->OnLine(v1::LogLine::STDOUT, line, absl::Now());
  });
  LineSplitter err(setup_.max_line_bytes, [sink](absl::string_view line) {
    sink->OnLine(v1::LogLine::STDERR, line, absl::Now());
  });
  const absl::Time deadline = setup_.timeout > absl::ZeroDuration()
                                  ? setup_.start + setup_.timeout
                                  : absl::InfiniteFuture();
  absl::Time kill_at = absl::InfiniteFuture();
  absl::Time cancel_at = absl::InfiniteFuture();
  absl::Time drain_until = absl::InfiniteFuture();
  bool init_exited = false;
  std::vector<char> buffer(64 * 1024);

  auto terminate = [&](v1::ExecStatus why, absl::Time now) {
    reason_ = why;
    Signal(SIGTERM);
    kill_at = now + setup_.kill_grace;
  };
  auto read_stream = [&](int* fd, LineSplitter* splitter) {
    ssize_t n = read(*fd, buffer.data(), buffer.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      CloseFd(fd);
      return;
    }
    uint64_t size = static_cast<uint64_t>(n);
    if (setup_.max_log_bytes > 0 && log_bytes_ + size > setup_.max_log_bytes) {
      splitter->Feed(absl::string_view(
          buffer.data(),
          static_cast<size_t>(setup_.max_log_bytes - log_bytes_)));
      log_bytes_ += size;
      if (reason_ == v1::EXEC_STATUS_UNSPECIFIED) reason_ = v1::LOG_LIMIT;
      // Stop reading: the writers get EPIPE, and the task is killed.
      if (!init_exited) Signal(SIGKILL);
      CloseFd(&setup_.stdout_fd);
      CloseFd(&setup_.stderr_fd);
      return;
    }
    log_bytes_ += size;
    splitter->Feed(absl::string_view(buffer.data(), static_cast<size_t>(n)));
  };

  for (;;) {
    bool pipes_open = setup_.stdout_fd >= 0 || setup_.stderr_fd >= 0;
    absl::Time now = absl::Now();
    if (init_exited && (!pipes_open || now >= drain_until)) break;
    if (!init_exited) {
      if (reason_ == v1::EXEC_STATUS_UNSPECIFIED && now >= deadline) {
        terminate(v1::TIMED_OUT, now);
      }
      if (now >= kill_at) {
        Signal(SIGKILL);
        kill_at = absl::InfiniteFuture();
      }
    }
    absl::Time wake_at = init_exited ? drain_until : kill_at;
    if (!init_exited && reason_ == v1::EXEC_STATUS_UNSPECIFIED &&
        deadline < wake_at) {
      wake_at = deadline;
    }
    struct pollfd fds[4];
    int count = 0;
    int out_index = -1, err_index = -1, init_index = -1;
    if (setup_.stdout_fd >= 0) {
      out_index = count;
      fds[count++] = {setup_.stdout_fd, POLLIN, 0};
    }
    if (setup_.stderr_fd >= 0) {
      err_index = count;
      fds[count++] = {setup_.stderr_fd, POLLIN, 0};
    }
    if (!init_exited) {
      init_index = count;
      fds[count++] = {setup_.pidfd, POLLIN, 0};
    }
    const int wake_index = count;
    fds[count++] = {wake_fd_, POLLIN, 0};
    int ready = poll(fds, count, PollTimeoutMs(now, wake_at));
    if (ready < 0) continue;  // EINTR
    if (fds[wake_index].revents != 0) {
      uint64_t value;
      if (read(wake_fd_, &value, sizeof(value)) < 0) value = 0;
      bool cancel;
      absl::Duration grace;
      {
        MutexLock lock(&mu_);
        cancel = cancel_requested_;
        grace = cancel_grace_;
      }
      absl::Time cancel_now = absl::Now();
      if (cancel && !init_exited && reason_ == v1::EXEC_STATUS_UNSPECIFIED) {
        terminate(v1::CANCELLED, cancel_now);
        cancel_at = cancel_now;
      }
      if (cancel && !init_exited && grace != absl::InfiniteDuration()) {
        // The SIGKILL comes `grace` after the cancel (or the timeout's
        // SIGTERM), if that is sooner than planned.
        absl::Time from =
            cancel_at != absl::InfiniteFuture() ? cancel_at : cancel_now;
        kill_at = std::min(kill_at, from + grace);
      }
    }
    if (out_index >= 0 && fds[out_index].revents != 0) {
      read_stream(&setup_.stdout_fd, &out);
    }
    if (err_index >= 0 && fds[err_index].revents != 0 &&
        setup_.stderr_fd >= 0) {
      read_stream(&setup_.stderr_fd, &err);
    }
    if (init_index >= 0 && fds[init_index].revents != 0) {
      init_exited = true;
      drain_until = absl::Now() + kDrainAfterExit;
    }
  }
  CloseFd(&setup_.stdout_fd);
  CloseFd(&setup_.stderr_fd);
  out.Finish();
  err.Finish();

  int status = 0;
  struct rusage usage = {};
  while (wait4(setup_.init_pid, &status, __WALL, &usage) < 0 &&
         errno == EINTR) {
  }
  result_ = BuildResult(status, usage);
  CloseFd(&setup_.pidfd);
  CloseFd(&setup_.report_fd);
  setup_.cgroup.reset();  // removes the cgroup directories
  // Every process of the task is gone (init of a pid namespace is reaped
  // only after all of them): its network namespace can go back.
  setup_.network.reset();
}

v1::ExecResult SandboxExecution::BuildResult(int init_status,
                                             const struct rusage& usage) {
  bool setup_failed = false, exec_failed = false, exited = false;
  ChildReport failure;
  int command_status = 0;
  ChildReport report;
  while (read(setup_.report_fd, &report, sizeof(report)) ==
         static_cast<ssize_t>(sizeof(report))) {
    report.step[sizeof(report.step) - 1] = '\0';
    if (report.kind == ChildReport::kSetupFailed && !setup_failed) {
      setup_failed = true;
      failure = report;
    } else if (report.kind == ChildReport::kExecFailed) {
      exec_failed = true;
      failure = report;
    } else if (report.kind == ChildReport::kCommandExited) {
      exited = true;
      command_status = report.wait_status;
    }
  }

  v1::ExecResult result;
  absl::Duration wall = absl::Now() - setup_.start;
  result.mutable_wall_time()->set_seconds(
      absl::IDivDuration(wall, absl::Seconds(1), &wall));
  result.mutable_wall_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(wall)));
  result.set_log_bytes(log_bytes_);
  uint64_t cgroup_peak = setup_.cgroup ? setup_.cgroup->MaxMemoryUsage() : 0;
  result.set_max_rss_bytes(cgroup_peak > 0
                               ? cgroup_peak
                               : static_cast<uint64_t>(usage.ru_maxrss) * 1024);
  const bool oom = setup_.cgroup && setup_.cgroup->OomKills() > 0;
  const bool pids = setup_.cgroup && setup_.cgroup->PidsLimitHits() > 0;

  std::string message;
  if (setup_failed) {
    result.set_status(v1::SETUP_FAILED);
    message = absl::StrCat("sandbox setup: ", failure.step, ": ",
                           ErrnoText(failure.error));
  } else if (exec_failed) {
    result.set_status(v1::SETUP_FAILED);
    message = absl::StrCat(failure.step, ": ", ErrnoText(failure.error));
  } else if (reason_ == v1::LOG_LIMIT) {
    result.set_status(v1::LOG_LIMIT);
    message = absl::StrCat("output exceeded max_log_bytes (",
                           setup_.max_log_bytes, "); killed");
  } else if (reason_ == v1::TIMED_OUT || reason_ == v1::CANCELLED) {
    result.set_status(reason_);
    message = absl::StrCat(
        reason_ == v1::TIMED_OUT
            ? absl::StrCat("timed out after ",
                           absl::FormatDuration(setup_.timeout))
            : std::string("cancelled"),
        killed_
            ? absl::StrCat("; SIGKILLed after the ",
                           absl::FormatDuration(setup_.kill_grace), " grace")
            : std::string("; stopped by SIGTERM"));
  } else if (exited) {
    if (WIFEXITED(command_status)) {
      result.set_exit_code(WEXITSTATUS(command_status));
    } else if (WIFSIGNALED(command_status)) {
      result.set_signal(WTERMSIG(command_status));
      result.set_exit_code(128 + WTERMSIG(command_status));
    }
    const bool failed = result.exit_code() != 0;
    if (failed && oom) {
      result.set_status(v1::OUT_OF_MEMORY);
      message = "out of memory: killed at the cgroup memory limit";
    } else if (failed && pids) {
      result.set_status(v1::PIDS_LIMIT);
      message = "the task reached its process limit (fork failed)";
    } else if (WIFSIGNALED(command_status)) {
      result.set_status(v1::SIGNALED);
      message = absl::StrCat("killed by signal ", result.signal(), " (",
                             strsignal(result.signal()), ")");
    } else {
      result.set_status(v1::EXITED);
    }
  } else {
    // init vanished without a report: killed from outside (or by the OOM
    // killer, which may pick it).
    result.set_status(oom ? v1::OUT_OF_MEMORY : v1::SIGNALED);
    int sig = WIFSIGNALED(init_status) ? WTERMSIG(init_status) : 0;
    result.set_signal(sig);
    message =
        absl::StrCat(oom ? "out of memory; " : "",
                     "sandbox init ended without a report (signal ", sig, ")");
  }
  if (!setup_.limits_note.empty()) {
    message = message.empty() ? setup_.limits_note
                              : absl::StrCat(message, "; ", setup_.limits_note);
  }
  result.set_message(message);
  return result;
}

}  // namespace sandbox
}  // namespace kiln
