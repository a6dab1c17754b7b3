// The shared empty network namespace of LocalSandboxOptions::
// NetworkNamespaces::kSharedEmpty: making it, and starting a sandbox in it
// (or in a pooled namespace: network_pool.h).
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_SHARED_NETWORK_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_SHARED_NETWORK_H_

#include <sys/types.h>

#include <functional>

#include "absl/status/statusor.h"

namespace kiln {
namespace sandbox {

// The Landlock ABI version, or 0 without Landlock. Scoping abstract unix
// sockets (what makes sharing the namespace safe) needs 6.
int LandlockAbi();

// A new, empty network namespace (only `lo`, down), made on a thread of its
// own (unshare(CLONE_NEWNET) changes only the calling thread) and kept
// alive by the returned fd (O_CLOEXEC).
absl::StatusOr<int> MakeEmptyNetworkNamespace();

// Runs `start` on a short-lived thread that first joins the network
// namespace `netns` (a clone()d child inherits its thread's namespace).
// Not on the calling thread: it could not always go back (re-entering the
// engine's own namespace needs CAP_SYS_ADMIN over whichever user namespace
// owns it, e.g. none inside a container). The thread inherits the caller's
// signal mask. Returns start()'s result (-1 with errno set when it
// failed); an error when the thread could not join `netns`.
absl::StatusOr<pid_t> StartInNetworkNamespace(
    int netns, const std::function<pid_t()>& start);

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SHARED_NETWORK_H_
