#include "executors/local_sandbox/network_pool.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <set>
#include <thread>

#include "gtest/gtest.h"

namespace kiln {
namespace sandbox {
namespace {

constexpr char kClean[] =
    "sockets: used 0\n"
    "TCP: inuse 0 orphan 3 tw 0 alloc 12 mem 5\n"
    "UDP: inuse 0 mem 2\n"
    "UDPLITE: inuse 0\n"
    "RAW: inuse 0\n"
    "FRAG: inuse 0 memory 0\n";

TEST(SockstatTest, CleanWhateverTheMachineWideCounts) {
  EXPECT_TRUE(SockstatShowsNothingLeft(kClean));
  EXPECT_TRUE(SockstatShowsNothingLeft(
      "TCP6: inuse 0\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\n"
      "FRAG6: inuse 0 memory 0\n"));
}

TEST(SockstatTest, AnythingLeftIsSeen) {
  for (const char* left : {
           "sockets: used 1\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\n",
           "sockets: used 0\nTCP: inuse 1 orphan 0 tw 0 alloc 0 mem 0\n",
           "sockets: used 0\nTCP: inuse 0 orphan 0 tw 2 alloc 0 mem 0\n",
           "sockets: used 0\nUDP: inuse 1 mem 0\n",
           "sockets: used 0\nFRAG: inuse 1 memory 4096\n",
           "TCP6: inuse 0\nRAW6: inuse 1\n",
       }) {
    EXPECT_FALSE(SockstatShowsNothingLeft(left)) << left;
  }
}

TEST(SockstatTest, TextItCannotReadIsNotClean) {
  for (const char* odd : {
           "", "\n", "sockets used 0\n", "sockets: used\n",
           "sockets: used -1\n", "sockets: used zero\n",
           "TCP: orphan 0 alloc 0 mem 0\n",  // no per-namespace count
       }) {
    EXPECT_FALSE(SockstatShowsNothingLeft(odd)) << "'" << odd << "'";
  }
}

// Runs `fn` on a thread inside the namespace `fd` (as a task would be).
template <typename Fn>
auto InNamespace(int fd, Fn fn) -> decltype(fn()) {
  decltype(fn()) result{};
  std::thread t([&] {
    if (setns(fd, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "setns: " << errno;
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

ino_t Inode(int fd) {
  struct stat st;
  EXPECT_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

// A TCP connection over the namespace's loopback, closed by the client
// first: the client's end stays in TIME_WAIT.
bool ConnectOverLoopback() {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(listener);
    return false;
  }
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = connect(client, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  int accepted = ok ? accept(listener, nullptr, nullptr) : -1;
  close(client);
  if (accepted >= 0) close(accepted);
  close(listener);
  return ok && accepted >= 0;
}

class NetworkPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { pool_ = NetworkNamespacePool::Create(4); }
  std::unique_ptr<NetworkNamespacePool::Lease> Acquire() {
    auto lease = pool_->Acquire();
    EXPECT_TRUE(lease.ok()) << lease.status();
    return lease.ok() ? *std::move(lease) : nullptr;
  }
  // Takes `n` leases at once into `leases`; how many namespaces they hold.
  size_t DistinctNamespaces(
      int n,
      std::vector<std::unique_ptr<NetworkNamespacePool::Lease>>* leases) {
    std::set<ino_t> seen;
    for (int i = 0; i < n; ++i) {
      leases->push_back(Acquire());
      if (leases->back() == nullptr) {
        ADD_FAILURE() << "lease " << i;
        continue;
      }
      seen.insert(Inode(leases->back()->fd()));
    }
    return seen.size();
  }
  std::shared_ptr<NetworkNamespacePool> pool_;
};

TEST_F(NetworkPoolTest, LoopbackIsUpAndTheHostIsNotThere) {
  auto lease = Acquire();
  ASSERT_NE(lease, nullptr);
  int host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  EXPECT_NE(Inode(lease->fd()), Inode(host_ns));
  close(host_ns);
  short flags = InNamespace(lease->fd(), [] {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {};
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    short f = ioctl(s, SIOCGIFFLAGS, &ifr) == 0 ? ifr.ifr_flags : 0;
    close(s);
    return f;
  });
  EXPECT_TRUE(flags & IFF_UP);
  EXPECT_TRUE(InNamespace(lease->fd(), ConnectOverLoopback));
}

TEST_F(NetworkPoolTest, ANamespaceLeftCleanIsLentAgain) {
  ino_t first;
  {
    auto lease = Acquire();
    ASSERT_NE(lease, nullptr);
    first = Inode(lease->fd());
    // A task that opens and closes a unix socket and a UDP socket.
    EXPECT_TRUE(InNamespace(lease->fd(), [] {
      int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      close(u);
      close(d);
      return u >= 0 && d >= 0;
    }));
  }
  // A UDP socket's count drops after an RCU grace period.
  for (int i = 0; i < 200; ++i) {
    auto lease = Acquire();
    ASSERT_NE(lease, nullptr);
    if (Inode(lease->fd()) == first) {
      EXPECT_EQ(pool_->stats().made, 1 + pool_->stats().discarded);
      EXPECT_GE(pool_->stats().reused, 1u);
      return;
    }
    usleep(10000);
    first = Inode(lease->fd());
  }
  ADD_FAILURE() << "no namespace was ever lent twice";
}

TEST_F(NetworkPoolTest, TimeWaitLeftBehindMeansANewNamespace) {
  ino_t used;
  {
    auto lease = Acquire();
    ASSERT_NE(lease, nullptr);
    used = Inode(lease->fd());
    ASSERT_TRUE(InNamespace(lease->fd(), ConnectOverLoopback));
  }
  auto next = Acquire();
  ASSERT_NE(next, nullptr);
  EXPECT_NE(Inode(next->fd()), used);
  EXPECT_EQ(pool_->stats().discarded, 1u);
  EXPECT_EQ(pool_->stats().reused, 0u);
}

TEST_F(NetworkPoolTest, ASocketStillOpenMeansANewNamespace) {
  ino_t used;
  int kept = -1;
  {
    auto lease = Acquire();
    ASSERT_NE(lease, nullptr);
    used = Inode(lease->fd());
    // Outlives the lease, as a socket passed out of the task would.
    kept = InNamespace(lease->fd(), [] {
      return socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    });
    ASSERT_GE(kept, 0);
  }
  auto next = Acquire();
  ASSERT_NE(next, nullptr);
  EXPECT_NE(Inode(next->fd()), used);
  EXPECT_EQ(pool_->stats().discarded, 1u);
  close(kept);
}

TEST_F(NetworkPoolTest, ConcurrentLeasesNeverShare) {
  std::vector<std::unique_ptr<NetworkNamespacePool::Lease>> leases;
  EXPECT_EQ(DistinctNamespaces(6, &leases), 6u);
  EXPECT_EQ(pool_->stats().made, 6u);
}

TEST_F(NetworkPoolTest, KeepsAtMostMaxIdle) {
  std::vector<std::unique_ptr<NetworkNamespacePool::Lease>> leases;
  DistinctNamespaces(6, &leases);
  leases.clear();  // 6 given back to a pool that keeps 4
  EXPECT_EQ(DistinctNamespaces(6, &leases), 6u);
  // At least 2 had to be made again: only 4 were kept.
  EXPECT_GE(pool_->stats().made, 8u);
}

TEST_F(NetworkPoolTest, LeasesOutliveThePoolHandle) {
  auto lease = Acquire();
  ASSERT_NE(lease, nullptr);
  pool_.reset();  // the lease keeps the pool; giving back must not crash
  lease.reset();
}

}  // namespace
}  // namespace sandbox
}  // namespace kiln
