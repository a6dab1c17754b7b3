#include "engine/oci/registry/testing/registry_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace kiln::oci::registry::testing {
namespace {

constexpr size_t kMaxLog = 16 << 20;

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("writing ", path));
  return absl::OkStatus();
}

// "…listening on 127.0.0.1:PORT…" → "127.0.0.1:PORT".
std::string ListeningAddress(const std::string& log) {
  constexpr char kMark[] = "listening on 127.0.0.1:";
  size_t at = log.find(kMark);
  if (at == std::string::npos) return "";
  size_t start = at + strlen("listening on ");
  size_t end = start + strlen("127.0.0.1:");
  while (end < log.size() && log[end] >= '0' && log[end] <= '9') ++end;
  if (end == start + strlen("127.0.0.1:")) return "";
  return log.substr(start, end - start);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::Start(
    RegistryServerOptions options) {
  std::unique_ptr<RegistryServer> server(new RegistryServer());
  const std::string& dir = server->dir_.path();
  std::string config = absl::StrCat(
      "version: 0.1\n"
      "log:\n  level: info\n"
      "storage:\n  filesystem:\n    rootdirectory: ",
      dir, "/storage\n  delete:\n    enabled: true\n",
      "http:\n  addr: 127.0.0.1:0\n  secret: kiln-test-secret\n");
  if (!options.tls_certificate.empty()) {
    absl::StrAppend(&config,
                    "  tls:\n    certificate: ", options.tls_certificate,
                    "\n    key: ", options.tls_key, "\n");
  }
  if (!options.username.empty()) {
    absl::StatusOr<CommandResult> h =
        RunCommand({"htpasswd", "-Bbn", options.username, options.password});
    if (!h.ok()) return h.status();
    if (h->exit_code != 0) {
      return absl::InternalError(absl::StrCat("htpasswd: ", h->output));
    }
    std::string line(absl::StripTrailingAsciiWhitespace(h->output));
    if (absl::Status s = WriteFile(dir + "/htpasswd", line + "\n"); !s.ok()) {
      return s;
    }
    absl::StrAppend(&config, "auth:\n  htpasswd:\n    realm: kiln-test\n",
                    "    path: ", dir, "/htpasswd\n");
  }
  if (absl::Status s = WriteFile(dir + "/config.yml", config); !s.ok()) {
    return s;
  }

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  std::string config_path = dir + "/config.yml";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    // A clean environment: REGISTRY_* variables would override the config.
    char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    char* envp[] = {path_env, nullptr};
    char arg0[] = "docker-registry";
    char arg1[] = "serve";
    char* argv[] = {arg0, arg1, config_path.data(), nullptr};
    execvpe(argv[0], argv, envp);
    _exit(127);
  }
  close(pipefd[1]);
  server->pid_ = pid;
  int read_fd = pipefd[0];
  server->drainer_ =
      std::thread([s = server.get(), read_fd] { s->Drain(read_fd); });

  absl::Time deadline = absl::Now() + options.start_timeout;
  std::string address;
  {
    MutexLock lock(&server->mu_);
    server->mu_.AwaitWithDeadline(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return server->eof_ || !ListeningAddress(server->log_).empty();
        },
        deadline);
    address = ListeningAddress(server->log_);
    if (address.empty()) {
      return absl::UnavailableError(
          absl::StrCat("docker-registry did not start listening; its output:\n",
                       server->log_));
    }
  }
  server->address_ = address;
  return server;
}

void RegistryServer::Drain(int fd) {
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    MutexLock lock(&mu_);
    if (log_.size() < kMaxLog) log_.append(buf, n);
  }
  close(fd);
  MutexLock lock(&mu_);
  eof_ = true;
}

std::string RegistryServer::Log() {
  MutexLock lock(&mu_);
  return log_;
}

RegistryServer::~RegistryServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    // Wait for it by its pidfd, with a bound; then SIGKILL.
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    bool exited = false;
    if (pidfd >= 0) {
      pollfd p = {pidfd, POLLIN, 0};
      int r;
      do {
        r = poll(&p, 1, 10000);
      } while (r < 0 && errno == EINTR);
      exited = r == 1;
      close(pidfd);
    }
    if (!exited) kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (drainer_.joinable()) drainer_.join();
}

}  // namespace kiln::oci::registry::testing
