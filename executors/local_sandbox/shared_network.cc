#include "executors/local_sandbox/shared_network.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "base/status.h"

namespace kiln {
namespace sandbox {

int LandlockAbi() {
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0,
                     LANDLOCK_CREATE_RULESET_VERSION);
  return abi > 0 ? static_cast<int>(abi) : 0;
}

absl::StatusOr<int> MakeEmptyNetworkNamespace() {
  int fd = -1;
  int error = 0;
  const char* step = "";
  std::thread maker([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      error = errno;
      step = "unshare(CLONE_NEWNET)";
      return;
    }
    fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = errno;
      step = "open /proc/thread-self/ns/net";
    }
  });
  maker.join();
  if (fd < 0) return ErrnoStatus(error, step);
  return fd;
}

absl::StatusOr<pid_t> StartInNetworkNamespace(
    int netns, const std::function<pid_t()>& start) {
  pid_t pid = -1;
  int error = 0;
  bool joined = false;
  std::thread starter([&] {
    if (setns(netns, CLONE_NEWNET) != 0) {
      error = errno;
      return;
    }
    joined = true;
    pid = start();
    error = errno;
  });
  starter.join();
  if (!joined) {
    return ErrnoStatus(error,
                       "setns into the network namespace made for tasks");
  }
  errno = error;
  return pid;
}

}  // namespace sandbox
}  // namespace kiln
