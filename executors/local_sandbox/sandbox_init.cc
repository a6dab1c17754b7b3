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
//
// Freestanding: no C library at all, only raw system calls (x86-64 and
// arm64), its own _start and a static, non-PIE link (it must run in any
// rootfs). A statically linked glibc spent ~0.25 ms of every task before
// main: CPUID-based CPU feature and cache detection (each CPUID a trap to
// the hypervisor in a VM), IRELATIVE relocations and a readlink of
// /proc/self/exe. Nothing here needs TLS, errno, stdio or the heap.
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
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "executors/local_sandbox/sandbox_protocol.h"

namespace kiln {
namespace sandbox {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "kiln-sandbox-init: unsupported architecture"
#endif

// ---- System calls: the result, or -errno. ----

inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0,
                long e = 0) {
#if defined(__x86_64__)
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return ret;
#else
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
                   : "memory");
  return x0;
#endif
}

template <typename T>
long Arg(T* p) {
  return reinterpret_cast<long>(p);
}

// The kernel's sigset_t: one bit per signal, 64 signals.
using KernelSigset = uint64_t;
constexpr long kSigsetSize = sizeof(KernelSigset);
constexpr KernelSigset Bit(int sig) { return KernelSigset{1} << (sig - 1); }

[[noreturn]] void Exit(int code) {
  for (;;) Sys(SYS_exit_group, code);
}

void Write(const void* data, long size) {
  Sys(SYS_write, kReportFd, Arg(data), size);
}

void Report(int32_t kind, int32_t error, int32_t wait_status, const char* step,
            const char* detail) {
  ChildReport report;  // zeroed by its initializers
  report.kind = kind;
  report.error = error;
  report.wait_status = wait_status;
  const char* parts[3] = {step, detail == nullptr ? "" : " ",
                          detail == nullptr ? "" : detail};
  size_t n = 0;
  for (const char* s : parts) {
    while (*s != '\0' && n + 1 < sizeof(report.step)) report.step[n++] = *s++;
  }
  report.step[n] = '\0';
  Write(&report, sizeof(report));
}

// `result` is a failed call's -errno.
[[noreturn]] void Fail(const char* step, long result) {
  Report(ChildReport::kSetupFailed, static_cast<int32_t>(-result), 0, step,
         nullptr);
  Exit(kSetupExitCode);
}

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

// The low 32 bits of ptrace's second argument (the pid; little-endian).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian");
constexpr uint32_t kPidArgLow = offsetof(struct seccomp_data, args[1]);

long InstallSeccompFilter() {
  // Two instructions per denied call, the header, and the final allow.
  struct sock_filter program[16 + 2 * kDeniedCount];
  size_t n = 0;
  auto add = [&](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
    program[n].code = code;
    program[n].jt = jt;
    program[n].jf = jf;
    program[n].k = k;
    ++n;
  };
  add(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
  add(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0);
  add(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
  add(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
#if defined(__x86_64__)
  // x32 system calls carry this bit; they are another ABI.
  add(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
  add(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
#endif
  // ptrace(request, 1, ...) is denied; other targets (the task's own
  // processes) are allowed: debuggers and LeakSanitizer need it.
  add(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(SYS_ptrace), 0, 4);
  add(BPF_LD | BPF_W | BPF_ABS, kPidArgLow, 0, 0);
  add(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1);
  add(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, 0, 0);
  add(BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
  for (size_t i = 0; i < kDeniedCount; ++i) {
    add(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(kDenied[i]), 0, 1);
    add(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, 0, 0);
  }
  add(BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(n);
  prog.filter = program;
  return Sys(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, Arg(&prog), 0, 0);
}

// True when nobody holds the read end of the report pipe any more: the
// engine process is gone (even if it died by SIGKILL).
bool EngineGone() {
  struct pollfd p;
  p.fd = kReportFd;
  p.events = 0;
  p.revents = 0;
  struct {
    long tv_sec;
    long tv_nsec;
  } now = {0, 0};
  return Sys(SYS_ppoll, Arg(&p), 1, Arg(&now), 0, kSigsetSize) == 1 &&
         (p.revents & POLLERR) != 0;
}

struct Command {
  char** candidates;
  int candidate_count;
  char** argv;
  char** envp;
};

// In the vfork()ed child: exec the command or report why not.
[[noreturn]] void ExecCommand(const Command& c) {
  const KernelSigset none = 0;
  Sys(SYS_rt_sigprocmask, SIG_SETMASK, Arg(&none), 0, kSigsetSize);
  long error = -ENOENT;
  for (int i = 0; i < c.candidate_count; ++i) {
    long result =
        Sys(SYS_execve, Arg(c.candidates[i]), Arg(c.argv), Arg(c.envp));
    // Like execvp: a candidate that exists but fails is the better reason.
    if (result != -ENOENT && result != -ENOTDIR) error = result;
  }
  Report(ChildReport::kExecFailed, static_cast<int32_t>(-error), 0, "exec",
         c.argv[0]);
  Exit(127);
}

// vfork: the child borrows this process's memory and stack until it execs
// or exits, while this process waits. The child never returns from here
// (ExecCommand does not return), so it cannot disturb a frame the parent
// goes back to.
__attribute__((noinline)) long StartCommand(const Command* c) {
#if defined(__x86_64__)
  long pid = Sys(SYS_vfork);
#else
  long pid = Sys(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
#endif
  if (pid == 0) ExecCommand(*c);
  return pid;
}

[[noreturn]] void Supervise(long command) {
  const KernelSigset waited =
      Bit(SIGCHLD) | Bit(SIGTERM) | Bit(SIGINT) | Bit(SIGHUP) | Bit(SIGIO);
  if (EngineGone()) Exit(1);
  for (;;) {
    long sig = Sys(SYS_rt_sigtimedwait, Arg(&waited), 0, 0, kSigsetSize);
    if (sig < 0) continue;
    if (sig == SIGIO) {
      // Exiting pid 1 kills every process of the namespace.
      if (EngineGone()) Exit(1);
      continue;
    }
    if (sig != SIGCHLD) {
      Sys(SYS_kill, -1, sig);
      continue;
    }
    for (;;) {
      int status = 0;
      long pid = Sys(SYS_wait4, -1, Arg(&status), WNOHANG | __WALL, 0);
      if (pid <= 0) break;
      // A stop (the command asked to be traced by init) is not an end.
      if (pid == command && (WIFEXITED(status) || WIFSIGNALED(status))) {
        Report(ChildReport::kCommandExited, 0, status, "", nullptr);
        Exit(0);
      }
    }
  }
}

// A decimal count in [1, max]; -1 if `s` is not one.
long ParseCount(const char* s, long max) {
  long value = 0;
  if (*s == '\0') return -1;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return -1;
    value = value * 10 + (*s - '0');
    if (value > max) return -1;
  }
  return value < 1 ? -1 : value;
}

[[noreturn]] void Main(long argc, char** argv, char** envp) {
  // Signals arrive blocked (the executor blocks all of them around clone)
  // and stay blocked: init takes them with rt_sigtimedwait().
  long result = Sys(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (result != 0) Fail("init: PR_SET_DUMPABLE", result);
  result = Sys(SYS_fcntl, kReportFd, F_SETFD, FD_CLOEXEC);
  if (result != 0) Fail("init: report fd close-on-exec", result);
  long count = argc < 3 ? -1 : ParseCount(argv[1], argc - 3);
  if (count < 0) Fail("init: command line", -EINVAL);
  Command c{argv + 2, static_cast<int>(count), argv + 2 + count, envp};
  result = InstallSeccompFilter();
  if (result != 0) Fail("init: install seccomp filter", result);
  if (EngineGone()) Exit(1);
  long command = StartCommand(&c);
  if (command < 0) Fail("init: start command", command);
  Supervise(command);
}

}  // namespace
}  // namespace sandbox
}  // namespace kiln

// Compilers may emit calls to these for copies and zeroing (a struct's
// initializers, say) even in freestanding code. Written through volatile
// pointers so that they are not themselves turned into calls to memset or
// memcpy.
extern "C" void* memset(void* dst, int c, size_t n) {
  volatile unsigned char* d = static_cast<volatile unsigned char*>(dst);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<unsigned char>(c);
  return dst;
}

extern "C" void* memcpy(void* dst, const void* src, size_t n) {
  volatile unsigned char* d = static_cast<volatile unsigned char*>(dst);
  const unsigned char* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) d[i] = s[i];
  return dst;
}

// The entry point's C half: `stack` is the initial stack (argc, argv...,
// nullptr, envp..., nullptr, auxv).
extern "C" [[noreturn]] __attribute__((used)) void KilnInitStart(long* stack) {
  long argc = stack[0];
  char** argv = reinterpret_cast<char**>(stack + 1);
  kiln::sandbox::Main(argc, argv, argv + argc + 1);
}

// _start: hand the initial stack pointer to KilnInitStart on an aligned
// stack, with no frame to return to.
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".global _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call KilnInitStart\n"
    "  hlt\n");
#else
__asm__(
    ".text\n"
    ".global _start\n"
    ".type _start,%function\n"
    "_start:\n"
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, sp\n"
    "  bl KilnInitStart\n"
    "  brk #0\n");
#endif
