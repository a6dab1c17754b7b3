// kiln-sandbox-init: pid 1 of every local-sandbox task.
//
// The executor's setup child builds the namespaces, the filesystem and the
// credentials, then execs this small static binary, so that no task code
// ever runs next to a copy of the engine's memory. This process:
//   - makes itself non-dumpable (with the task holding no capability in the
//     sandbox's user namespace, it cannot ptrace init or read /proc/1/mem);
//   - installs the seccomp filter below (inherited by the whole task);
//   - starts the command (vfork + execve over the candidate paths);
//   - stays as init: reaps zombies, forwards SIGTERM/SIGINT/SIGHUP to every
//     process of the task, ends the task when the engine's end of the report
//     pipe is gone (SIGIO), and exits as soon as the command exits, which
//     makes the kernel kill every remaining process of the namespace.
// Depends on libc only, linked statically (it must run in any rootfs).
//
// The seccomp filter (errno EPERM unless noted) denies:
//   ptrace of pid 1 (init); process_vm_readv, process_vm_writev,
//   pidfd_getfd, kcmp - reading or changing another process's memory
//       (ptrace of the task's own processes stays allowed: debuggers and
//       LeakSanitizer use it; init is non-dumpable and the task has no
//       CAP_SYS_PTRACE, so the kernel refuses it anyway);
//   keyctl, add_key, request_key   - the kernel keyrings (not namespaced);
//   bpf, perf_event_open, userfaultfd, io_uring_setup/enter/register
//       - large kernel attack surface, not needed by build tools;
//   kexec_load, kexec_file_load, init_module, finit_module, delete_module,
//   reboot, swapon, swapoff, acct, quotactl, syslog, iopl, ioperm, uselib,
//   open_by_handle_at, lookup_dcookie
//       - host administration (already denied by missing capabilities;
//         the filter is a second wall);
//   any system call of a foreign ABI (x32, i386 on x86_64): the process is
//       killed (SIGSYS), so the list above cannot be bypassed by number.
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <initializer_list>

#include "executors/local_sandbox/sandbox_protocol.h"

namespace kiln {
namespace sandbox {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "kiln-sandbox-init: unsupported architecture for the seccomp filter"
#endif

// The low 32 bits of ptrace's second argument (the pid; little-endian).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian");
constexpr uint32_t kPidArgLow = offsetof(struct seccomp_data, args[1]);

const long kDenied[] = {
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_quotactl,
    SYS_syslog,
    SYS_open_by_handle_at,
    SYS_lookup_dcookie,
    SYS_kcmp,
    SYS_pidfd_getfd,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
#if defined(__x86_64__)
    SYS_iopl,
    SYS_ioperm,
    SYS_uselib,
#endif
};
constexpr size_t kDeniedCount = sizeof(kDenied) / sizeof(kDenied[0]);

void Report(int32_t kind, int32_t error, int32_t wait_status, const char* step,
            const char* detail) {
  ChildReport report;
  report.kind = kind;
  report.error = error;
  report.wait_status = wait_status;
  size_t n = 0;
  for (const char* s :
       {step, detail == nullptr ? "" : " ", detail == nullptr ? "" : detail}) {
    while (*s != '\0' && n + 1 < sizeof(report.step)) report.step[n++] = *s++;
  }
  report.step[n] = '\0';
  ssize_t ignored = write(kReportFd, &report, sizeof(report));
  (void)ignored;
}

[[noreturn]] void Fail(const char* step) {
  Report(ChildReport::kSetupFailed, errno, 0, step, nullptr);
  _exit(kSetupExitCode);
}

int InstallSeccompFilter() {
  // Two instructions per denied call, the header, and the final allow.
  struct sock_filter program[16 + 2 * kDeniedCount];
  size_t n = 0;
  program[n++] =
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  program[n++] =
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
  // x32 system calls carry this bit; they are another ABI.
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
  // ptrace(request, 1, ...) is denied; other targets (the task's own
  // processes) are allowed: debuggers and LeakSanitizer need it.
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                          static_cast<uint32_t>(SYS_ptrace), 0, 4);
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kPidArgLow);
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  for (size_t i = 0; i < kDeniedCount; ++i) {
    program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                            static_cast<uint32_t>(kDenied[i]), 0, 1);
    program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  }
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {static_cast<unsigned short>(n), program};
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

// True when nobody holds the read end of the report pipe any more: the
// engine process is gone (even if it died by SIGKILL).
bool EngineGone() {
  struct pollfd p = {kReportFd, 0, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

struct Command {
  char** candidates;
  int candidate_count;
  char** argv;
  char** envp;
};

// In the vfork()ed child: exec the command or report why not.
[[noreturn]] void ExecCommand(const Command& c) {
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  int error = ENOENT;
  for (int i = 0; i < c.candidate_count; ++i) {
    execve(c.candidates[i], c.argv, c.envp);
    // Like execvp: a candidate that exists but fails is the better reason.
    if (errno != ENOENT && errno != ENOTDIR) error = errno;
  }
  Report(ChildReport::kExecFailed, error, 0, "exec", c.argv[0]);
  _exit(127);
}

[[noreturn]] void Supervise(pid_t command) {
  sigset_t waited;
  sigemptyset(&waited);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGIO}) {
    sigaddset(&waited, sig);
  }
  if (EngineGone()) _exit(1);
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) continue;
    if (sig == SIGIO) {
      // Exiting pid 1 kills every process of the namespace.
      if (EngineGone()) _exit(1);
      continue;
    }
    if (sig != SIGCHLD) {
      kill(-1, sig);
      continue;
    }
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
      if (pid <= 0) break;
      // A stop (the command asked to be traced by init) is not an end.
      if (pid == command && (WIFEXITED(status) || WIFSIGNALED(status))) {
        Report(ChildReport::kCommandExited, 0, status, "", nullptr);
        _exit(0);
      }
    }
  }
}

int Main(int argc, char** argv, char** envp) {
  // Signals arrive blocked (the executor blocks all of them around clone)
  // and stay blocked: init takes them with sigwaitinfo().
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) Fail("init: PR_SET_DUMPABLE");
  if (fcntl(kReportFd, F_SETFD, FD_CLOEXEC) != 0) {
    Fail("init: report fd close-on-exec");
  }
  if (argc < 3) {
    errno = EINVAL;
    Fail("init: command line");
  }
  char* end = nullptr;
  long count = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || count < 1 || count > argc - 3) {
    errno = EINVAL;
    Fail("init: command line");
  }
  Command c{argv + 2, static_cast<int>(count), argv + 2 + count, envp};
  if (InstallSeccompFilter() != 0) Fail("init: install seccomp filter");
  if (EngineGone()) _exit(1);
  pid_t command = vfork();
  if (command == 0) ExecCommand(c);
  if (command < 0) Fail("init: start command");
  Supervise(command);
}

}  // namespace
}  // namespace sandbox
}  // namespace kiln

int main(int argc, char** argv, char** envp) {
  return kiln::sandbox::Main(argc, argv, envp);
}
