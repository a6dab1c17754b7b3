// What the sandbox's pid 1 reports to the executor over the report pipe.
// Shared by the executor (sandbox_execution.cc), the setup child
// (sandbox_child.cc) and the separate init binary (sandbox_init.cc), which
// is freestanding (no C library): keep this header to plain declarations
// (<stdint.h> types, constants) that need no library code.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PROTOCOL_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PROTOCOL_H_

#include <stdint.h>

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

// The fds the setup child leaves for the init binary: 0, 1, 2 are the
// task's stdin/stdout/stderr, kReportFd the report pipe (write end).
constexpr int kReportFd = 3;
// Where the setup child keeps the init binary (O_PATH, close-on-exec) until
// it execs it.
constexpr int kInitBinaryFd = 4;
// Exit code of init when setting up failed (after a kSetupFailed report).
constexpr int kSetupExitCode = 125;

// The init binary's command line:
//   kiln-sandbox-init <N> <candidate 1> ... <candidate N> <argv 0> ...
// where the candidates are the paths to try, in order, for the command
// (argv[0] resolved over PATH); its environment is the command's.
constexpr char kInitBinaryName[] = "kiln-sandbox-init";

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_SANDBOX_PROTOCOL_H_
