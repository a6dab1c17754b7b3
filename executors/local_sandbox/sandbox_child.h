// The sandbox's pid 1. Entered through clone() with new user, mount, pid,
// ipc, uts (and, unless the task asked for it, network) namespaces; it
// assembles the filesystem, drops every capability, starts the command and
// stays as init: reaps zombies, forwards SIGTERM/SIGINT/SIGHUP to every
// process of the task, and exits as soon as the command exits, which makes
// the kernel kill every remaining process of the namespace.
//
// It talks to the executor only through the plan's report pipe: a setup step
// that fails writes one ChildReport (step name, errno) and exits; the end of
// the command is reported with its wait status. The child never allocates
// and uses raw system calls only, so it is safe to run in a fork of a
// multithreaded (and sanitizer-instrumented) process.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_CHILD_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_CHILD_H_

#include <cstdint>

namespace kiln {
namespace sandbox {

struct ChildReport {
  enum Kind : int32_t {
    kSetupFailed = 1,    // `step` failed with `error`
    kExecFailed = 2,     // no exec candidate could be executed
    kCommandExited = 3,  // `wait_status` of the command
  };
  int32_t kind = 0;
  int32_t error = 0;
  int32_t wait_status = 0;
  char step[244] = {};
};
static_assert(sizeof(ChildReport) == 256, "one atomic pipe write");

// clone() entry point; `plan` is a SandboxPlan*. Never returns.
int SandboxInitMain(void* plan);

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_CHILD_H_
