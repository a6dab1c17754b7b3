// Tasks without `network` in the executor's shared empty network namespace
// (LocalSandboxOptions::NetworkNamespaces::kSharedEmpty): nothing is
// reachable over IP, `lo` stays down and cannot be brought up, and a task
// cannot connect to another concurrent task's listener (abstract unix
// sockets are scoped per task by Landlock; TCP has no route at all).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "executors/testing/recording_sink.h"
#include "gmock/gmock.h"
#include "tests/sandbox/sandbox_fixture.h"

namespace kiln {
namespace sandbox_test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

// Python in the task: precise errno names for each socket operation.
v1::ExecRequest PythonRequest(const v1::ExecRequest& shell,
                              const std::string& program) {
  v1::ExecRequest request = shell;
  request.clear_argv();
  request.add_argv("/usr/bin/python3");
  request.add_argv("-c");
  request.add_argv(program);
  return request;
}

constexpr char kPrelude[] = R"(
import errno, fcntl, os, socket, struct, sys, time
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno))
def attempt(label, fn):
    try:
        fn()
        print(label, "OK", flush=True)
    except OSError as e:
        print(label, err(e), flush=True)
)";

class SharedNetworkTest : public SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    network_namespaces_ = LocalSandboxOptions::NetworkNamespaces::kSharedEmpty;
    SetUpExecutor(LocalSandboxOptions::Cgroups::kOff);
    ASSERT_TRUE(executor_->shared_network_active())
        << executor_->network_fallback_reason();
  }
};

TEST_F(SharedNetworkTest, PlatformSaysTasksHaveNoLoopback) {
  EXPECT_TRUE(
      absl::EndsWith(executor_->Platform(), "/local-sandbox/v3+empty-net"))
      << executor_->Platform();
}

TEST_F(SharedNetworkTest, LoopbackIsDownAndStaysDown) {
  Outcome outcome =
      Run(PythonRequest(ShellRequest(""), absl::StrCat(kPrelude, R"(
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))  # SIOCGIFFLAGS
flags = struct.unpack("16sH14x", ifr)[1]
print("lo", "up" if flags & 1 else "down", flush=True)
attempt("raise-lo", lambda: fcntl.ioctl(
    s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1)))  # SIOCSIFFLAGS
attempt("udp-127", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        .sendto(b"x", ("127.0.0.1", 9)))
attempt("connect-127", lambda: socket.create_connection(("127.0.0.1", 9), 5))
attempt("connect-out", lambda: socket.create_connection(("192.0.2.1", 80), 5))
)")));
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_EQ(outcome.result.exit_code(), 0) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("lo down")) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("raise-lo EPERM")) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("udp-127 ENETUNREACH")) << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("connect-127 ENETUNREACH"))
      << outcome.Joined();
  EXPECT_THAT(outcome.out, Contains("connect-out ENETUNREACH"))
      << outcome.Joined();
  ExpectHealthy();
}

TEST_F(SharedNetworkTest, HostLoopbackIsUnreachable) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  const std::string connect = absl::StrCat(
      kPrelude,
      "attempt('host', lambda: socket.create_connection(('127.0.0.1', ",
      ntohs(addr.sin_port), "), 5))\n");
  Outcome isolated = Run(PythonRequest(ShellRequest(""), connect));
  EXPECT_THAT(isolated.out, Contains("host ENETUNREACH")) << isolated.Joined();
  // `network: true` is still the host's network.
  v1::ExecRequest networked = PythonRequest(ShellRequest(""), connect);
  networked.set_network(true);
  Outcome shared = Run(networked);
  EXPECT_THAT(shared.out, Contains("host OK")) << shared.Joined();
  close(fd);
}

TEST_F(SharedNetworkTest, TaskCannotConnectToAnotherTasksListener) {
  const std::string name = UniqueToken("abstract");
  // The listener: an abstract unix socket (the one thing the shared
  // namespace has in common) and a TCP socket on every address.
  conformance::RecordingSink listener_sink;
  absl::StatusOr<std::unique_ptr<Execution>> listener = executor_->Start(
      PythonRequest(ShellRequest(""),
                    absl::StrReplaceAll(absl::StrCat(kPrelude, R"(
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind("\0NAME")
u.listen(4)
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.bind("\0NAME-dgram")
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.bind(("0.0.0.0", 0))
t = socket.socket()
t.bind(("0.0.0.0", 0))
t.listen(4)
print("READY", t.getsockname()[1], v.getsockname()[1], flush=True)
time.sleep(600)
)"),
                                        {{"NAME", name}})),
      &listener_sink);
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(listener_sink.AwaitLines(1, absl::Seconds(30)))
      << absl::StrJoin(listener_sink.Lines(v1::LogLine::STDERR), "\n");
  std::vector<std::string> ready = listener_sink.Lines(v1::LogLine::STDOUT);
  ASSERT_EQ(ready.size(), 1u);
  ASSERT_TRUE(absl::StartsWith(ready[0], "READY ")) << ready[0];
  std::vector<std::string> ports = absl::StrSplit(ready[0].substr(6), ' ');
  ASSERT_EQ(ports.size(), 2u) << ready[0];

  Outcome other = Run(PythonRequest(
      ShellRequest(""),
      absl::StrReplaceAll(
          absl::StrCat(kPrelude, R"(
def connect_abstract(n):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect("\0" + n)
def dgram_abstract(n):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    c.sendto(b"x", "\0" + n)
attempt("other-abstract", lambda: connect_abstract("NAME"))
attempt("other-dgram", lambda: dgram_abstract("NAME-dgram"))
attempt("other-tcp", lambda: socket.create_connection(("127.0.0.1", TCP), 5))
attempt("other-udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        .sendto(b"x", ("127.0.0.1", UDP)))
# Its own abstract socket still works: the scope is per task.
own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
own.bind("\0NAME-own")
own.listen(1)
attempt("own-abstract", lambda: connect_abstract("NAME-own"))
)"),
          {{"NAME", name}, {"TCP", ports[0]}, {"UDP", ports[1]}})));
  (*listener)->Cancel();
  EXPECT_EQ((*listener)->Wait().status(), v1::CANCELLED);
  EXPECT_EQ(other.result.status(), v1::EXITED) << other.Joined();
  EXPECT_THAT(other.out, Contains("other-abstract EPERM")) << other.Joined();
  EXPECT_THAT(other.out, Contains("other-dgram EPERM")) << other.Joined();
  EXPECT_THAT(other.out, Contains("other-tcp ENETUNREACH")) << other.Joined();
  EXPECT_THAT(other.out, Contains("other-udp ENETUNREACH")) << other.Joined();
  EXPECT_THAT(other.out, Contains("own-abstract OK")) << other.Joined();
  ExpectHealthy();
}

}  // namespace
}  // namespace sandbox_test
}  // namespace kiln
