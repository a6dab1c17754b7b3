// Run inside the sandbox: tries to reach pid 1 (the sandbox's init) and the
// kernel interfaces the seccomp filter denies; prints one "name: result"
// line per attempt ("ok" or the error text).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void Print(const char* name, int ok) {
  printf("%s: %s\n", name, ok ? "ok" : strerror(errno));
}

int main(void) {
  // The first mapping of pid 1, if its maps can be read at all.
  unsigned long start = 0x400000;
  FILE* maps = fopen("/proc/1/maps", "r");
  if (maps != NULL) {
    if (fscanf(maps, "%lx", &start) != 1) start = 0x400000;
    fclose(maps);
  }
  char comm[64] = "";
  int comm_fd = open("/proc/1/comm", O_RDONLY);
  if (comm_fd >= 0) {
    ssize_t n = read(comm_fd, comm, sizeof(comm) - 1);
    if (n > 0) comm[n - 1] = '\0';
    close(comm_fd);
  }
  printf("init: %s\n", comm);

  long attached = ptrace(PTRACE_ATTACH, 1, NULL, NULL);
  Print("ptrace_attach", attached == 0);
  if (attached == 0) {
    int status;
    waitpid(1, &status, __WALL);
    ptrace(PTRACE_DETACH, 1, NULL, NULL);
  }
  int mem = open("/proc/1/mem", O_RDONLY);
  Print("open_mem", mem >= 0);
  if (mem >= 0) {
    char buf[64];
    Print("read_mem", pread(mem, buf, sizeof(buf), (off_t)start) > 0);
    close(mem);
  }
  char buf[64];
  struct iovec local = {buf, sizeof(buf)};
  struct iovec remote = {(void*)start, sizeof(buf)};
  Print("process_vm_readv",
        syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0) > 0);
  Print("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                          KEY_SPEC_SESSION_KEYRING, 0) >= 0);
  Print("userfaultfd", syscall(SYS_userfaultfd, 0) >= 0);
  // Tracing the task's own processes stays possible (debuggers, LSan).
  fflush(stdout);  // the child must not write the buffered lines again
  pid_t child = fork();
  if (child == 0) {
    _exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  printf("traceme: %s\n",
         WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "denied");
  return 0;
}
