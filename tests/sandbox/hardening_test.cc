// Regression tests for the sandbox hardening (docs/h-sandbox.md): real
// tasks in the real sandbox, inside Bazel's own sandbox (no cgroups here;
// cgroup_limits_test covers those).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "tests/sandbox/sandbox_fixture.h"

namespace kiln {
namespace sandbox_test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class HardeningTest : public SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    SetUpExecutor(LocalSandboxOptions::Cgroups::kOff, {},
                  /*with_defaults=*/false);
  }
};

// Item: a task could ptrace its init (a fork of the engine) and read the
// engine's memory through /proc/1/mem.
TEST_F(HardeningTest, InitIsNotTheEngineAndCannotBeAttachedOrRead) {
  std::filesystem::copy_file("tests/sandbox/engine_memory_probe",
                             workspace_ + "/probe");
  // A concurrent task holding a secret in its environment: with the old
  // init (a copy of the engine), its request was in reach.
  conformance::RecordingSink other_sink;
  v1::ExecRequest other = ShellRequest("echo started; sleep 20");
  (*other.mutable_env())["KILN_TEST_SECRET"] = "s3cret-param";
  absl::StatusOr<std::unique_ptr<Execution>> running =
      executor_->Start(other, &other_sink);
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_TRUE(other_sink.AwaitLines(1, absl::Seconds(20)));

  v1::ExecRequest request = ShellRequest("./probe");
  absl::Time start = absl::Now();
  Outcome outcome = Run(request);
  (*running)->Cancel();
  (*running)->Wait();
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(
      outcome.out,
      ElementsAre("init: kiln-sandbox-in",
                  "ptrace_attach: Operation not permitted",
                  "open_mem: Permission denied",
                  "process_vm_readv: Operation not permitted",
                  "keyctl: Operation not permitted",
                  "userfaultfd: Operation not permitted", "traceme: ok"))
      << outcome.Joined();
  // Init was never stopped: the task ended promptly.
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("s3cret")));
  ExpectHealthy();
}

TEST_F(HardeningTest, TheSeccompFilterIsOnForEveryTaskProcess) {
  Outcome outcome = RunShell(
      "grep Seccomp: /proc/self/status; grep Seccomp: /proc/1/status; "
      "grep NoNewPrivs /proc/self/status");
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(outcome.out,
              ElementsAre("Seccomp:\t2", "Seccomp:\t2", "NoNewPrivs:\t1"))
      << outcome.Joined();
}

// Item: the store created after the executor was made was visible (hidden
// paths that did not exist yet were dropped), and so were other tasks'
// workspaces.
TEST_F(HardeningTest, AStoreCreatedAfterTheExecutorIsInvisible) {
  std::string store = tmp_ + "/store";
  LocalSandboxOptions options;
  options.hidden_paths = DefaultHiddenPaths(store);
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = std::move(*executor);
  // Only now does the store exist.
  std::filesystem::create_directories(store + "/cas");
  std::ofstream(store + "/secret.key") << "s3cret-hmac-key\n";
  std::ofstream(store + "/runs.db") << "runs\n";
  std::string other_workspace = tmp_ + "/other-task";
  std::filesystem::create_directories(other_workspace);
  std::ofstream(other_workspace + "/data.txt") << "s3cret-other-task\n";

  Outcome outcome = RunShell(absl::StrCat(
      "cat '", store, "/secret.key' '", other_workspace, "/data.txt'; ", "ls '",
      store, "' '", other_workspace, "'; echo \"status:$?\""));
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(outcome.out, ElementsAre("status:2")) << outcome.Joined();
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("runs.db")));
  ExpectHealthy();
}

// A listening unix socket at `path`; unlinked on destruction.
class UnixListener {
 public:
  explicit UnixListener(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path.size() >= sizeof(addr.sun_path)) return;
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 16) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
    bound_ = true;
    chmod(path.c_str(), 0777);
  }
  ~UnixListener() {
    if (fd_ >= 0) close(fd_);
    if (bound_) unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  // True when a client connected (its connection is pending in the queue).
  bool Connected() const {
    struct pollfd p = {fd_, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

// Item: host unix sockets were reachable with `network: false`.
TEST_F(HardeningTest, HostUnixSocketsAreUnreachable) {
  std::vector<std::string> paths = {tmp_ + "/engine.sock"};
  // The places daemons put their sockets, where this test may create one
  // (they are not writable inside Bazel's sandbox on every host).
  std::string token = absl::StrCat("kiln-test-", getpid(), ".sock");
  for (const char* dir : {"/run", "/tmp", "/var/tmp", "/dev/shm", "/var/run"}) {
    paths.push_back(absl::StrCat(dir, "/", token));
  }
  std::vector<std::unique_ptr<UnixListener>> listeners;
  std::string script;
  for (const std::string& path : paths) {
    auto listener = std::make_unique<UnixListener>(path);
    if (!listener->bound()) continue;
    absl::StrAppend(&script, "p.append('", path, "')\n");
    listeners.push_back(std::move(listener));
  }
  ASSERT_FALSE(listeners.empty());
  v1::ExecRequest request = ShellRequest("");
  request.clear_argv();
  request.add_argv("/usr/bin/python3");
  request.add_argv("-c");
  request.add_argv(absl::StrCat("import socket\np = []\n", script,
                                "for path in p:\n"
                                "  s = socket.socket(socket.AF_UNIX)\n"
                                "  try:\n"
                                "    s.connect(path)\n"
                                "    print('CONNECTED', path)\n"
                                "  except OSError as e:\n"
                                "    print('REFUSED', e.strerror)\n"));
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_EQ(outcome.out.size(), listeners.size()) << outcome.Joined();
  for (const std::string& line : outcome.out) {
    EXPECT_TRUE(absl::StartsWith(line, "REFUSED")) << line;
  }
  for (const auto& listener : listeners) {
    EXPECT_FALSE(listener->Connected());
  }
  ExpectHealthy();
}

// Item: the host's umask leaked into the sandbox.
TEST_F(HardeningTest, TheUmaskIs022WhateverTheHostsIs) {
  mode_t previous = umask(077);
  Outcome outcome = RunShell("umask; touch f; mkdir d; stat -c %a f d");
  umask(previous);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(outcome.out, ElementsAre("0022", "644", "755"))
      << outcome.Joined();
}

// Item: no default wall-time or /tmp-size limit existed.
TEST_F(HardeningTest, DefaultLimitsBoundATaskWithoutLimits) {
  LocalSandboxOptions defaults;
  EXPECT_GT(defaults.default_limits.timeout, absl::ZeroDuration());
  EXPECT_GT(defaults.default_limits.memory_bytes, 0u);
  EXPECT_GT(defaults.default_limits.max_pids, 0u);
  EXPECT_GT(defaults.default_limits.tmp_bytes, 0u);

  LocalSandboxOptions options;
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  options.default_limits.timeout = absl::Milliseconds(300);
  options.default_limits.tmp_bytes = 1 << 20;
  options.default_kill_grace = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = std::move(*executor);

  v1::ExecRequest endless = ShellRequest("sleep 30");
  endless.mutable_limits()->clear_timeout();
  absl::Time start = absl::Now();
  Outcome timed_out = Run(endless);
  EXPECT_EQ(timed_out.result.status(), v1::TIMED_OUT) << timed_out.Joined();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  const std::string fill =
      "for d in /tmp /var/tmp /run /dev/shm; do "
      "head -c 3145728 /dev/zero > $d/big 2>/dev/null && echo \"$d:FITS\" || "
      "echo \"$d:FULL\"; done";
  Outcome full = RunShell(fill);
  EXPECT_EQ(full.result.status(), v1::EXITED) << full.Joined();
  EXPECT_THAT(full.out, ElementsAre("/tmp:FULL", "/var/tmp:FULL", "/run:FULL",
                                    "/dev/shm:FULL"))
      << full.Joined();
  // Per task, the request overrides the default.
  v1::ExecRequest bigger = ShellRequest(fill);
  bigger.mutable_limits()->set_tmp_bytes(8 << 20);
  Outcome fits = Run(bigger);
  EXPECT_THAT(fits.out, ElementsAre("/tmp:FITS", "/var/tmp:FITS", "/run:FITS",
                                    "/dev/shm:FITS"))
      << fits.Joined();
}

TEST_F(HardeningTest, AMissingInitBinaryFailsLoudly) {
  LocalSandboxOptions options;
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  options.init_binary = tmp_ + "/no-such-init";
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(options);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(executor.status().message(), HasSubstr("kiln-sandbox-init"));
  EXPECT_THAT(executor.status().message(), HasSubstr("no-such-init"));
}

TEST_F(HardeningTest, TheRootHoldsOnlyTheAllowedTrees) {
  Outcome outcome = RunShell(
      "ls -A /; echo ---; touch /new 2>&1 || true; "
      "ls /sys /var/lib 2>&1 | head -2");
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  // The allowed trees, the private places, and the way to the workspace.
  std::set<std::string> allowed = {"bin",   "dev",    "etc",  "lib", "lib32",
                                   "lib64", "libx32", "proc", "run", "sbin",
                                   "tmp",   "usr",    "var"};
  allowed.insert(workspace_.substr(1, workspace_.find('/', 1) - 1));
  size_t i = 0;
  for (; i < outcome.out.size() && outcome.out[i] != "---"; ++i) {
    EXPECT_THAT(allowed, Contains(outcome.out[i])) << outcome.Joined();
  }
  EXPECT_THAT(outcome.out, Contains("usr"));
  EXPECT_THAT(outcome.Joined(), HasSubstr("Read-only file system"));
  EXPECT_THAT(outcome.Joined(), HasSubstr("'/sys': No such file or directory"));
}

}  // namespace
}  // namespace sandbox_test
}  // namespace kiln
