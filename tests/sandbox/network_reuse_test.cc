// Tasks without `network` under the default LocalSandboxOptions::
// NetworkNamespaces::kPerTask: each runs alone in a namespace with `lo` up;
// a namespace is lent to the next task only when the earlier one left
// nothing in it (executors/local_sandbox/network_pool.h), never to two
// tasks at once, and no task can change it for the next. kFreshPerTask
// never reuses one.
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "executors/testing/recording_sink.h"
#include "gmock/gmock.h"
#include "tests/sandbox/sandbox_fixture.h"

namespace kiln {
namespace sandbox_test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

// Prints the task's network namespace ("net:[INODE]") and what is in it as
// the task starts, then runs `python`.
v1::ExecRequest Task(const SandboxFixture& fixture, v1::ExecRequest shell,
                     const std::string& python) {
  shell.clear_argv();
  shell.add_argv("/usr/bin/python3");
  shell.add_argv("-c");
  shell.add_argv(absl::StrCat(R"(
import errno, fcntl, os, socket, struct, sys, time
print(os.readlink("/proc/self/ns/net"), flush=True)
# What the namespace holds as the task starts: any socket, any TIME_WAIT.
left = [w for l in open("/proc/net/sockstat") for w in [l.split()]
        if w[0] in ("sockets:", "TCP:")]
print("start", " ".join(" ".join(w) for w in left), flush=True)
def lo_flags():
    # A unix socket: an INET one stays counted in sockstat for an RCU grace
    # period after it is closed, and the namespace may then not be reused.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    f = struct.unpack("16sH14x", fcntl.ioctl(
        s, 0x8913, struct.pack("16sH14x", b"lo", 0)))[1]  # SIOCGIFFLAGS
    s.close()
    return f
def attempt(label, fn):
    try:
        fn()
        print(label, "OK", flush=True)
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, str(e.errno)), flush=True)
)",
                              python));
  return shell;
}

// A TCP round trip over the task's loopback; the client closes first, so
// its end stays in TIME_WAIT after the task.
constexpr char kLoopbackRoundTrip[] = R"(
def round_trip():
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(1)
    c = socket.create_connection(l.getsockname(), 5)
    a, _ = l.accept()
    c.sendall(b"ping")
    assert a.recv(4) == b"ping"
    c.close()
    a.close()
    l.close()
attempt("loopback", round_trip)
)";

class NetworkReuseTest : public SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    SetUpExecutor(LocalSandboxOptions::Cgroups::kOff);
    ASSERT_TRUE(executor_->network_pool_active())
        << executor_->network_fallback_reason();
  }
  // The namespace a finished task printed first.
  static std::string NamespaceOf(const Outcome& outcome) {
    return outcome.out.empty() ? "" : outcome.out[0];
  }
};

TEST_F(NetworkReuseTest, PlatformIsTheDocumentedOne) {
  // Same environment as a new namespace per task: same cache keys.
  EXPECT_TRUE(absl::EndsWith(executor_->Platform(), "/local-sandbox/v3"))
      << executor_->Platform();
}

TEST_F(NetworkReuseTest, ATaskThatLeftNothingHandsItsNamespaceOn) {
  // Tasks in turn, each finding no abstract socket of an earlier task and
  // binding one of its own; until one gets the namespace the task before
  // it had (a namespace is lent again only once the kernel has freed the
  // earlier task's sockets, which can lag its exit a little).
  const std::string task = R"(
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
attempt("abstract", lambda: c.connect("\0kiln-reuse-test"))
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind("\0kiln-reuse-test")
u.listen(1)
print("lo", "up" if lo_flags() & 1 else "down", flush=True)
)";
  std::string previous;
  bool handed_on = false;
  for (int i = 0; i < 20 && !handed_on; ++i) {
    Outcome next = Run(Task(*this, ShellRequest(""), task));
    ASSERT_EQ(next.result.exit_code(), 0) << next.Joined();
    EXPECT_THAT(next.out, Contains("abstract ECONNREFUSED")) << next.Joined();
    EXPECT_THAT(next.out, Contains("lo up")) << next.Joined();
    handed_on = NamespaceOf(next) == previous;
    previous = NamespaceOf(next);
  }
  EXPECT_TRUE(handed_on);
  EXPECT_GE(executor_->network_pool_stats().reused, 1u);
}

TEST_F(NetworkReuseTest, ATaskThatLeftTimeWaitDoesNotHandItsNamespaceOn) {
  Outcome used = Run(Task(*this, ShellRequest(""), kLoopbackRoundTrip));
  ASSERT_EQ(used.result.exit_code(), 0) << used.Joined();
  EXPECT_THAT(used.out, Contains("loopback OK")) << used.Joined();
  const auto before = executor_->network_pool_stats();
  Outcome next = Run(Task(*this, ShellRequest(""), kLoopbackRoundTrip));
  EXPECT_THAT(next.out, Contains("loopback OK")) << next.Joined();
  // A new namespace: no TCP connection, none in TIME_WAIT as it starts.
  ASSERT_GE(next.out.size(), 2u) << next.Joined();
  EXPECT_TRUE(absl::StrContains(next.out[1], "TCP: inuse 0 ")) << next.out[1];
  EXPECT_TRUE(absl::StrContains(next.out[1], " tw 0 ")) << next.out[1];
  const auto after = executor_->network_pool_stats();
  EXPECT_EQ(after.discarded, before.discarded + 1);
  EXPECT_EQ(after.made, before.made + 1);
}

TEST_F(NetworkReuseTest, ConcurrentTasksNeverShareANamespace) {
  conformance::RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> running = executor_->Start(
      Task(*this, ShellRequest(""), "time.sleep(600)\n"), &sink);
  ASSERT_TRUE(running.ok()) << running.status();
  // Its namespace and what was in it as it started: two lines.
  ASSERT_TRUE(sink.AwaitLines(2, absl::Seconds(30)));
  std::vector<std::string> lines = sink.Lines(v1::LogLine::STDOUT);
  ASSERT_EQ(lines.size(), 2u);
  Outcome other = Run(Task(*this, ShellRequest(""), ""));
  (*running)->Cancel();
  (*running)->Wait();
  EXPECT_NE(NamespaceOf(other), lines[0]);
  ASSERT_TRUE(absl::StartsWith(lines[0], "net:[")) << lines[0];
}

TEST_F(NetworkReuseTest, NoTaskCanChangeTheNamespaceForTheNext) {
  Outcome hostile = Run(Task(*this, ShellRequest(""), R"(
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("lo-down", lambda: fcntl.ioctl(
    s, 0x8914, struct.pack("16sH14x", b"lo", lo_flags() & ~1)))
attempt("address", lambda: fcntl.ioctl(s, 0x8916, struct.pack(
    "16sHH4s8x", b"lo", socket.AF_INET, 0, socket.inet_aton("10.9.8.7"))))
attempt("sysctl", lambda: open("/proc/sys/net/ipv4/ip_forward", "w").write("1"))
s.close()
)"));
  EXPECT_THAT(hostile.out, Contains("lo-down EPERM")) << hostile.Joined();
  EXPECT_THAT(hostile.out, Contains("address EPERM")) << hostile.Joined();
  EXPECT_THAT(hostile.out, testing::Not(Contains("sysctl OK")))
      << hostile.Joined();
  for (int i = 0; i < 3; ++i) {
    Outcome next = Run(Task(*this, ShellRequest(""), kLoopbackRoundTrip));
    EXPECT_THAT(next.out, Contains("loopback OK")) << next.Joined();
  }
  ExpectHealthy();
}

class FreshNetworkTest : public SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    network_namespaces_ = LocalSandboxOptions::NetworkNamespaces::kFreshPerTask;
    SetUpExecutor(LocalSandboxOptions::Cgroups::kOff);
  }
};

TEST_F(FreshNetworkTest, EveryTaskGetsANewNamespace) {
  EXPECT_FALSE(executor_->network_pool_active());
  for (int i = 0; i < 3; ++i) {
    // Each leaves TIME_WAIT behind; none finds any.
    Outcome task = Run(Task(*this, ShellRequest(""), kLoopbackRoundTrip));
    EXPECT_THAT(task.out, Contains("loopback OK")) << task.Joined();
    ASSERT_GE(task.out.size(), 2u) << task.Joined();
    EXPECT_TRUE(absl::StrContains(task.out[1], " tw 0 ")) << task.out[1];
  }
}

}  // namespace
}  // namespace sandbox_test
}  // namespace kiln
