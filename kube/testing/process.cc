#include "kube/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace kiln {
namespace kube {
namespace testing {

absl::StatusOr<std::unique_ptr<TestProcess>> TestProcess::Start(
    const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) envs.push_back(*e);
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& e : envs)
    cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(fds[1]);
  auto p = std::unique_ptr<TestProcess>(new TestProcess());
  p->pid_ = pid;
  p->out_fd_ = fds[0];
  TestProcess* raw = p.get();
  p->reader_ = std::thread([raw] {
    char buf[4096];
    for (;;) {
      ssize_t n = read(raw->out_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      MutexLock l(&raw->mu_);
      if (n <= 0) {
        raw->eof_ = true;
        return;
      }
      raw->output_.append(buf, static_cast<size_t>(n));
    }
  });
  return p;
}

TestProcess::~TestProcess() {
  Kill();
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

std::string TestProcess::output() const {
  MutexLock l(&mu_);
  return output_;
}

bool TestProcess::WaitForOutput(const std::string& text,
                                absl::Duration timeout) const {
  MutexLock l(&mu_);
  return mu_.AwaitWithDeadline(
             [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
               return output_.find(text) != std::string::npos || eof_;
             },
             absl::Now() + timeout) &&
         output_.find(text) != std::string::npos;
}

absl::StatusOr<int> TestProcess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!reaped_) {
    int st;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = st;
      break;
    }
    if (absl::Now() >= deadline) {
      Kill();
      return absl::DeadlineExceededError(
          absl::StrCat("process did not exit within ",
                       absl::FormatDuration(timeout), "; output:\n", output()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  {
    // The output is complete once the pipe closes (children of the
    // process may hold it; bounded wait).
    MutexLock l(&mu_);
    mu_.AwaitWithDeadline([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return eof_; },
                          absl::Now() + absl::Seconds(2));
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return 128 + WTERMSIG(status_);
}

void TestProcess::Kill() {
  if (reaped_ || pid_ <= 0) return;
  kill(-pid_, SIGKILL);
  int st;
  if (waitpid(pid_, &st, 0) == pid_) {
    reaped_ = true;
    status_ = st;
  }
}

absl::StatusOr<std::pair<int, std::string>> RunProcess(
    const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env,
    absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<TestProcess>> p =
      TestProcess::Start(argv, env);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> code = (*p)->Wait(timeout);
  if (!code.ok()) return code.status();
  return std::make_pair(*code, (*p)->output());
}

}  // namespace testing
}  // namespace kube
}  // namespace kiln
