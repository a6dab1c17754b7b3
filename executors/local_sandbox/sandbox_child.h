// The sandbox's setup child. Entered through clone(CLONE_VM | CLONE_VFORK)
// with new user, mount, pid, ipc, uts (and, unless the task asked for it,
// network) namespaces: it shares the engine's memory (the engine thread that
// called clone() is suspended until the child execs or exits), assembles the
// filesystem, drops every capability and execs the small init binary
// (kiln-sandbox-init, see sandbox_init.cc), which becomes the sandbox's
// pid 1 and starts the command. No task code ever runs before that exec, so
// nothing the task can reach holds a copy of the engine's memory.
//
// It talks to the executor only through the plan's report pipe: a setup step
// that fails writes one ChildReport (step name, errno) and exits. The child
// never allocates, takes no locks, writes no memory but its own stack, and
// uses raw system calls only, so it is safe in a multithreaded (and
// sanitizer-instrumented) process.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_CHILD_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_CHILD_H_

#include "executors/local_sandbox/sandbox_protocol.h"

namespace kiln {
namespace sandbox {

// clone() entry point; `plan` is a const SandboxPlan*. Never returns.
int SandboxSetupMain(void* plan);

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_CHILD_H_
