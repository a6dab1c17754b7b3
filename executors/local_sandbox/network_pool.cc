#include "executors/local_sandbox/network_pool.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace kiln {
namespace sandbox {

bool SockstatShowsNothingLeft(absl::string_view text) {
  // Lines such as "TCP: inuse 0 orphan 0 tw 0 alloc 2 mem 0": a label,
  // then name/value pairs.
  bool any = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> words =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.empty() || words[0].empty() || words[0].back() != ':') {
      return false;
    }
    if ((words.size() - 1) % 2 != 0) return false;
    for (size_t i = 1; i + 1 < words.size(); i += 2) {
      uint64_t value;
      if (!absl::SimpleAtoi(words[i + 1], &value)) return false;
      const absl::string_view name = words[i];
      if (name == "used" || name == "inuse" || name == "tw") {
        any = true;
        if (value != 0) return false;
      }
    }
  }
  return any;
}

namespace {

// pread of a whole /proc file (a few hundred bytes) from offset 0.
bool ReadAt0(int fd, std::string* text) {
  char buf[1024];
  ssize_t n;
  do {
    n = pread(fd, buf, sizeof(buf), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0 || static_cast<size_t>(n) == sizeof(buf)) return false;
  text->assign(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

NetworkNamespacePool::Lease::~Lease() { pool_->Return(entry_); }

std::shared_ptr<NetworkNamespacePool> NetworkNamespacePool::Create(
    size_t max_idle) {
  return std::shared_ptr<NetworkNamespacePool>(
      new NetworkNamespacePool(max_idle));
}

NetworkNamespacePool::~NetworkNamespacePool() {
  MutexLock lock(&mu_);
  for (const Entry& e : idle_) Close(e);
}

// unshare(CLONE_NEWNET) changes only the calling thread's namespace: done
// on a thread of its own, which also opens what names the namespace later
// (the /proc/thread-self/net files are bound to the namespace they were
// opened in).
absl::StatusOr<NetworkNamespacePool::Entry> NetworkNamespacePool::Make() {
  Entry entry;
  int error = 0;
  const char* step = "";
  std::thread maker([&] {
    auto fail = [&](const char* what) {
      error = errno;
      step = what;
    };
    if (unshare(CLONE_NEWNET) != 0) return fail("unshare(CLONE_NEWNET)");
    // A unix socket for the ioctl: freed as it is closed (an INET one's
    // count in sockstat drops only after an RCU grace period).
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return fail("socket for loopback");
    struct ifreq ifr = {};
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    bool up = ioctl(sock, SIOCGIFFLAGS, &ifr) == 0;
    if (up) {
      ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      up = ioctl(sock, SIOCSIFFLAGS, &ifr) == 0;
    }
    if (!up) {
      fail("bring up lo");
      close(sock);
      return;
    }
    close(sock);
    entry.ns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (entry.ns_fd < 0) return fail("open /proc/thread-self/ns/net");
    entry.sockstat_fd =
        open("/proc/thread-self/net/sockstat", O_RDONLY | O_CLOEXEC);
    if (entry.sockstat_fd < 0) return fail("open /proc/net/sockstat");
    // Absent when IPv6 is off.
    entry.sockstat6_fd =
        open("/proc/thread-self/net/sockstat6", O_RDONLY | O_CLOEXEC);
  });
  maker.join();
  if (error != 0) {
    Close(entry);
    return ErrnoStatus(error, step);
  }
  return entry;
}

bool NetworkNamespacePool::IsClean(const Entry& entry) {
  std::string text;
  if (!ReadAt0(entry.sockstat_fd, &text) || !SockstatShowsNothingLeft(text)) {
    return false;
  }
  if (entry.sockstat6_fd < 0) return true;
  return ReadAt0(entry.sockstat6_fd, &text) && SockstatShowsNothingLeft(text);
}

void NetworkNamespacePool::Close(const Entry& entry) {
  for (int fd : {entry.ns_fd, entry.sockstat_fd, entry.sockstat6_fd}) {
    if (fd >= 0) close(fd);
  }
}

absl::StatusOr<std::unique_ptr<NetworkNamespacePool::Lease>>
NetworkNamespacePool::Acquire() {
  while (true) {
    Entry entry;
    {
      MutexLock lock(&mu_);
      if (idle_.empty()) break;
      entry = idle_.front();
      idle_.pop_front();
    }
    if (IsClean(entry)) {
      {
        MutexLock lock(&mu_);
        ++stats_.reused;
      }
      return std::unique_ptr<Lease>(new Lease(shared_from_this(), entry));
    }
    Close(entry);
    MutexLock lock(&mu_);
    ++stats_.discarded;
  }
  {
    MutexLock lock(&mu_);
    if (!cannot_make_.ok()) return cannot_make_;
  }
  absl::StatusOr<Entry> made = Make();
  if (!made.ok()) {
    // Not allowed here (no CAP_SYS_ADMIN): not tried again.
    if (absl::IsPermissionDenied(made.status())) {
      MutexLock lock(&mu_);
      cannot_make_ = made.status();
    }
    return made.status();
  }
  {
    MutexLock lock(&mu_);
    ++stats_.made;
  }
  return std::unique_ptr<Lease>(new Lease(shared_from_this(), *made));
}

void NetworkNamespacePool::Return(const Entry& entry) {
  MutexLock lock(&mu_);
  if (idle_.size() >= max_idle_) {
    Close(entry);
    return;
  }
  idle_.push_back(entry);
}

NetworkNamespacePool::Stats NetworkNamespacePool::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace sandbox
}  // namespace kiln
