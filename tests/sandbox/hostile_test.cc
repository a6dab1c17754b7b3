// Hostile tasks in the local sandbox, inside Bazel's own sandbox (cgroups
// unavailable, so memory/pids limits use the documented rlimit fallback).
// Each test checks the denial, that the result says why, and that the
// executor still runs a normal task afterwards.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

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
using ::testing::Not;

class HostileTaskTest : public SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    secret_dir_ = tmp_ + "/secret";
    secret_file_ = tmp_ + "/secret-file.txt";
    std::filesystem::create_directories(secret_dir_);
    std::ofstream(secret_dir_ + "/token.txt") << "s3cret-in-dir\n";
    std::ofstream(secret_file_) << "s3cret-file\n";
    SetUpExecutor(LocalSandboxOptions::Cgroups::kOff,
                  {secret_dir_, secret_file_});
  }
  std::string secret_dir_;
  std::string secret_file_;
};

TEST_F(HostileTaskTest, WritesOutsideTheWorkspaceFail) {
  const char* home = getenv("HOME");
  std::string home_probe =
      absl::StrCat(home != nullptr ? home : "/root", "/kiln-probe-", getpid());
  std::string script;
  for (const std::string& path :
       {std::string("/etc/kiln-probe"), std::string("/usr/kiln-probe"),
        home_probe, tmp_ + "/outside-workspace"}) {
    absl::StrAppend(&script, "if touch '", path, "'; then echo 'WROTE ", path,
                    "'; else echo 'DENIED ", path, "'; fi\n");
  }
  Outcome outcome = RunShell(script);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  ASSERT_EQ(outcome.out.size(), 4u) << outcome.Joined();
  for (const std::string& line : outcome.out) {
    EXPECT_TRUE(absl::StartsWith(line, "DENIED")) << line;
  }
  // The shell says why: read-only file system (host root, hidden tmpfs).
  EXPECT_THAT(absl::StrJoin(outcome.err, "\n"),
              HasSubstr("Read-only file system"));
  EXPECT_FALSE(std::filesystem::exists("/etc/kiln-probe"));
  EXPECT_FALSE(std::filesystem::exists(home_probe));
  EXPECT_FALSE(std::filesystem::exists(tmp_ + "/outside-workspace"));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, HiddenPathsCannotBeRead) {
  // Hidden paths inside a visible tree (here: the workspace) are covered;
  // only the test's own hidden paths, so that they are hidden by their own
  // mounts.
  std::string dir = workspace_ + "/secret";
  std::string file = workspace_ + "/secret-file.txt";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/token.txt") << "s3cret-in-dir\n";
  std::ofstream(file) << "s3cret-file\n";
  SetUpExecutor(LocalSandboxOptions::Cgroups::kOff, {dir, file},
                /*with_defaults=*/false);
  Outcome outcome = RunShell(
      absl::StrCat("cat '", dir, "/token.txt'; echo \"dir:$?\"; ls -A '", dir,
                   "' | wc -l; cat '", file,
                   "'; echo \"file:$?\"; "
                   "touch '",
                   dir, "/new' || echo READ_ONLY"));
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  // The directory is an empty read-only tmpfs, the file reads as /dev/null.
  EXPECT_THAT(outcome.out, ElementsAre("dir:1", "0", "file:0", "READ_ONLY"))
      << outcome.Joined();
  EXPECT_THAT(absl::StrJoin(outcome.err, "\n"),
              HasSubstr("No such file or directory"));
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("s3cret")));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, HostPathsOutsideTheAllowedTreesDoNotExist) {
  // Not hidden by any list: the test's scratch dir (beside the workspace)
  // is simply not part of the sandbox's root.
  SetUpExecutor(LocalSandboxOptions::Cgroups::kOff, {},
                /*with_defaults=*/false);
  Outcome outcome =
      RunShell(absl::StrCat("cat '", secret_dir_, "/token.txt' '", secret_file_,
                            "'; echo \"cat:$?\"; ls -A '", tmp_, "'"));
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  // Only the way down to the workspace exists.
  EXPECT_THAT(outcome.out, ElementsAre("cat:1", "workspace"))
      << outcome.Joined();
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("s3cret")));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, PathsUnderAHiddenHomeAreInvisible) {
  // With the defaults, $HOME is covered: a secret below it is just absent.
  Outcome outcome = RunShell(
      absl::StrCat("cat '", secret_dir_, "/token.txt' '", secret_file_, "'"));
  EXPECT_EQ(outcome.result.status(), v1::EXITED);
  EXPECT_NE(outcome.result.exit_code(), 0) << outcome.Joined();
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("s3cret")));
  ExpectHealthy();
}

// A listener on the host's loopback; accepts in the background.
class LoopbackListener {
 public:
  LoopbackListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(listen(fd_, 16), 0);
  }
  ~LoopbackListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The task's uid is the engine's (root here), and much of /proc is guarded
// by file mode alone: without the read-only binds a task could set
// machine-wide sysctls (kernel.core_pattern names a program the kernel runs
// as root on the host) and interrupt affinities. Each write puts back the
// value it read, so the host is unchanged even where it succeeds.
TEST_F(HostileTaskTest, KernelControlsInProcAreReadOnly) {
  Outcome outcome = RunShell(R"(
for f in /proc/sys/kernel/core_pattern /proc/sys/kernel/printk_ratelimit \
         /proc/sys/vm/overcommit_ratio /proc/sys/net/ipv4/ip_forward \
         /proc/sys/kernel/hostname /proc/irq/default_smp_affinity; do
  v=$(cat "$f") || { echo "unreadable $f"; continue; }
  if (printf '%s\n' "$v" > "$f") 2>/dev/null; then echo "WROTE $f"; else echo "refused $f"; fi
done
# Nor may a nested user namespace mount a fresh procfs without the binds
# (the kernel allows one only where /proc is fully visible).
if unshare --user --mount --pid --fork --mount-proc true 2>/dev/null; then
  echo "WROTE nested-proc"; else echo "refused nested-proc"; fi
)");
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  for (const char* f :
       {"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/printk_ratelimit",
        "/proc/sys/vm/overcommit_ratio", "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/kernel/hostname", "/proc/irq/default_smp_affinity"}) {
    EXPECT_THAT(outcome.out, Contains(absl::StrCat("refused ", f)))
        << outcome.Joined();
  }
  EXPECT_THAT(outcome.out, Contains("refused nested-proc")) << outcome.Joined();
  for (const std::string& line : outcome.out) {
    EXPECT_FALSE(absl::StartsWith(line, "WROTE")) << outcome.Joined();
  }
  ExpectHealthy();
}

TEST_F(HostileTaskTest, HostLoopbackIsUnreachableWithoutNetwork) {
  LoopbackListener listener;
  std::string script =
      absl::StrCat("if exec 3<>/dev/tcp/127.0.0.1/", listener.port(),
                   "; then echo CONNECTED; else echo REFUSED; fi; "
                   "ip_lo=$(cat /sys/class/net/lo/operstate 2>/dev/null); echo "
                   "\"lo:$ip_lo\"");
  v1::ExecRequest request = ShellRequest("");
  request.set_argv(0, "/bin/bash");
  request.set_argv(2, script);
  Outcome isolated = Run(request);
  EXPECT_EQ(isolated.result.status(), v1::EXITED) << isolated.Joined();
  EXPECT_THAT(isolated.out, Contains("REFUSED")) << isolated.Joined();
  EXPECT_THAT(absl::StrJoin(isolated.err, "\n"),
              HasSubstr("Connection refused"));

  request.set_network(true);
  Outcome shared = Run(request);
  EXPECT_THAT(shared.out, Contains("CONNECTED")) << shared.Joined();
  ExpectHealthy();
}

TEST_F(HostileTaskTest, EachTaskHasItsOwnTmp) {
  // The writer lives until cancelled, however slow the reader is.
  conformance::RecordingSink writer_sink;
  absl::StatusOr<std::unique_ptr<Execution>> writer = executor_->Start(
      ShellRequest("echo mine > /tmp/kiln-private; echo written; sleep 600"),
      &writer_sink);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(writer_sink.AwaitLines(1, absl::Seconds(20)));
  Outcome reader = RunShell(
      "if [ -e /tmp/kiln-private ]; then echo VISIBLE; else echo ABSENT; fi");
  (*writer)->Cancel();
  v1::ExecResult writer_result = (*writer)->Wait();
  EXPECT_EQ(writer_result.status(), v1::CANCELLED);
  EXPECT_THAT(reader.out, ElementsAre("ABSENT")) << reader.Joined();
  EXPECT_FALSE(std::filesystem::exists("/tmp/kiln-private"));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, HostProcessesAreInvisible) {
  // A host process with a recognisable command line.
  std::string token = UniqueToken("host");
  pid_t host = fork();
  if (host == 0) {
    execl("/bin/sh", "sh", "-c", "sleep 20; true", token.c_str(), nullptr);
    _exit(127);
  }
  ASSERT_GT(host, 0);
  Outcome outcome = RunShell(
      "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(tr '\\0' ' ' < "
      "$p/cmdline)\"; done");
  kill(host, SIGKILL);
  waitpid(host, nullptr, 0);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  // init, the shell, and the shell's children for the substitutions.
  EXPECT_LE(outcome.out.size(), 4u) << outcome.Joined();
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr(token)));
  std::set<std::string> pids;
  for (const std::string& line : outcome.out) {
    pids.insert(line.substr(0, line.find(' ')));
  }
  EXPECT_THAT(pids, Contains("1"));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, OnlyStandardFdsAreInherited) {
  int leaked_file = open("/dev/null", O_RDONLY);  // deliberately no CLOEXEC
  int leaked_pipe[2];
  ASSERT_EQ(pipe(leaked_pipe), 0);
  Outcome outcome = RunShell("ls /proc/self/fd");
  close(leaked_file);
  close(leaked_pipe[0]);
  close(leaked_pipe[1]);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  // 0-2 and the directory ls itself opened to list /proc/self/fd.
  EXPECT_THAT(outcome.out, ElementsAre("0", "1", "2", "3")) << outcome.Joined();
  ExpectHealthy();
}

TEST_F(HostileTaskTest, TiocstiIsImpossible) {
  // The probe lives in runfiles (maybe under a hidden $HOME): copy it in.
  std::filesystem::copy_file("tests/sandbox/tiocsti_probe",
                             workspace_ + "/tiocsti_probe");
  Outcome outcome = RunShell("./tiocsti_probe");
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_EQ(outcome.result.exit_code(), 0) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("/dev/tty: No such file or directory"));
  EXPECT_THAT(outcome.Joined(), Not(HasSubstr("injected")));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, EndlessOutputIsStoppedByTheLogLimit) {
  v1::ExecRequest request = ShellRequest("yes endless");
  request.mutable_limits()->set_max_log_bytes(1 << 20);
  absl::Time start = absl::Now();
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::LOG_LIMIT) << outcome.Joined();
  EXPECT_THAT(outcome.result.message(), HasSubstr("max_log_bytes"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, DaemonizedGrandchildDiesWithTheTask) {
  std::string token = UniqueToken("daemon");
  Outcome outcome =
      RunShell(absl::StrCat("setsid sh -c 'sleep 1000; true' ", token,
                            " </dev/null >/dev/null 2>&1 & echo started"));
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(outcome.out, ElementsAre("started"));
  // Wait() returned: nothing of the task may be left, not even briefly.
  EXPECT_THAT(ProcessesWithToken(token), ::testing::IsEmpty());
  ExpectHealthy();
}

TEST_F(HostileTaskTest, IgnoringSigtermIsKilledAfterTheGrace) {
  std::string token = UniqueToken("stubborn");
  v1::ExecRequest request = ShellRequest(
      absl::StrCat("trap '' TERM; echo ready; sh -c 'sleep 30; true' ", token));
  request.mutable_limits()->mutable_timeout()->set_seconds(0);
  request.mutable_limits()->mutable_timeout()->set_nanos(300 * 1000 * 1000);
  request.mutable_limits()->mutable_kill_grace()->set_nanos(300 * 1000 * 1000);
  absl::Time start = absl::Now();
  Outcome outcome = Run(request);
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(outcome.result.status(), v1::TIMED_OUT) << outcome.Joined();
  EXPECT_THAT(outcome.result.message(), HasSubstr("SIGKILL"));
  EXPECT_GE(took, absl::Milliseconds(550));
  EXPECT_LT(took, absl::Seconds(10));
  EXPECT_THAT(ProcessesWithToken(token), ::testing::IsEmpty());
  ExpectHealthy();
}

TEST_F(HostileTaskTest, MemoryHogFailsUnderTheRlimitFallback) {
  v1::ExecRequest request =
      ShellRequest("/usr/bin/python3 -c 'b = b\"x\" * (300 << 20)'");
  request.mutable_limits()->set_memory_bytes(64 << 20);
  Outcome outcome = Run(request);
  EXPECT_NE(outcome.result.exit_code(), 0) << outcome.Joined();
  EXPECT_THAT(outcome.result.message(), HasSubstr("RLIMIT_AS"));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, PidsLimitFallbackIsExplicit) {
  v1::ExecRequest request = ShellRequest("true");
  request.mutable_limits()->set_max_pids(10);
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(outcome.result.message(), HasSubstr("RLIMIT_NPROC"));
}

TEST_F(HostileTaskTest, CannotRemountTheRootReadWrite) {
  Outcome outcome = RunShell(
      "mount -o remount,rw / 2>&1 || echo REMOUNT_DENIED; "
      "grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status");
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("REMOUNT_DENIED")) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("CapEff:\t0000000000000000"));
  EXPECT_THAT(outcome.out, Contains("NoNewPrivs:\t1"));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, SetupFailuresNameTheStep) {
  v1::ExecRequest request = ShellRequest("true");
  request.set_argv(0, "/no/such/binary");
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::SETUP_FAILED);
  EXPECT_THAT(outcome.result.message(),
              HasSubstr("exec /no/such/binary: No such file or directory"));
  ExpectHealthy();
}

TEST_F(HostileTaskTest, MalformedRequestsAreRejectedAtStart) {
  conformance::RecordingSink sink;
  v1::ExecRequest escape = ShellRequest("true");
  escape.set_workdir("../..");
  EXPECT_EQ(executor_->Start(escape, &sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ExecRequest relative = ShellRequest("true");
  relative.set_workspace("relative/path");
  EXPECT_EQ(executor_->Start(relative, &sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ExecRequest empty = ShellRequest("true");
  empty.clear_argv();
  EXPECT_EQ(executor_->Start(empty, &sink).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sandbox_test
}  // namespace kiln
