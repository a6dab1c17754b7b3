#include "kube/credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace kiln::kube {
namespace {

constexpr size_t kMaxPluginOutput = 1 << 20;
constexpr size_t kMaxStderrInMessage = 512;
// Refresh an exec credential this long before it expires.
constexpr absl::Duration kExpirySlack = absl::Seconds(10);

std::string PluginName(const ExecPlugin& plugin) {
  return absl::StrCat("exec plugin \"", plugin.command, "\"");
}

// Reads `fds` (stdout, stderr) until both close or `deadline`; false on
// timeout.
bool ReadBoth(int out_fd, int err_fd, std::string* out, std::string* err,
              absl::Time deadline) {
  struct pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {out, err};
  int open = 2;
  char buf[8192];
  while (open > 0) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    int ms = static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1000));
    int n = poll(fds, 2, ms);
    if (n < 0 && errno != EINTR) return false;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof(buf));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      if (sinks[i]->size() < kMaxPluginOutput) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      }
    }
  }
  return true;
}

std::string StderrForMessage(const std::string& err) {
  std::string s(absl::StripAsciiWhitespace(err));
  if (s.size() > kMaxStderrInMessage) {
    s = "..." + s.substr(s.size() - kMaxStderrInMessage);
  }
  return s.empty() ? "" : absl::StrCat(": ", s);
}

}  // namespace

absl::StatusOr<ExecCredentialStatus> ParseExecCredential(
    const std::string& plugin, const std::string& api_version,
    const std::string& output) {
  nlohmann::json doc = nlohmann::json::parse(output, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(plugin, ": output is not an ExecCredential JSON object"));
  }
  if (doc.value("kind", "") != "ExecCredential") {
    return absl::InvalidArgumentError(
        absl::StrCat(plugin, ": output kind is \"", doc.value("kind", ""),
                     "\", want \"ExecCredential\""));
  }
  if (doc.value("apiVersion", "") != api_version) {
    return absl::InvalidArgumentError(absl::StrCat(
        plugin, ": output apiVersion is \"", doc.value("apiVersion", ""),
        "\", the kubeconfig asks for \"", api_version, "\""));
  }
  auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(plugin, ": output has no status"));
  }
  ExecCredentialStatus result;
  auto str = [&](const char* key) -> std::string {
    auto it = status->find(key);
    return it != status->end() && it->is_string() ? it->get<std::string>() : "";
  };
  result.credentials.token = str("token");
  result.credentials.cert_pem = str("clientCertificateData");
  result.credentials.key_pem = str("clientKeyData");
  if (result.credentials.cert_pem.empty() !=
      result.credentials.key_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        plugin,
        ": status has only one of clientCertificateData and clientKeyData"));
  }
  if (result.credentials.token.empty() && result.credentials.cert_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        plugin, ": status has neither token nor clientCertificateData"));
  }
  std::string expiry = str("expirationTimestamp");
  if (!expiry.empty()) {
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, expiry, &t, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(plugin, ": bad status.expirationTimestamp \"", expiry,
                       "\": ", error));
    }
    result.expires = t;
  }
  return result;
}

absl::StatusOr<ExecCredentialStatus> RunExecPlugin(const ExecPlugin& plugin,
                                                   absl::Duration timeout) {
  const std::string name = PluginName(plugin);
  if (plugin.interactive_mode == "Always") {
    return absl::FailedPreconditionError(absl::StrCat(
        name,
        ": interactiveMode Always needs a terminal; kiln runs without "
        "one (use a plugin that works non-interactively)"));
  }
  nlohmann::json info = {{"apiVersion", plugin.api_version},
                         {"kind", "ExecCredential"},
                         {"spec", {{"interactive", false}}}};
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view kv(*e);
    absl::string_view key = kv.substr(0, kv.find('='));
    bool overridden = key == "KUBERNETES_EXEC_INFO";
    for (const auto& [k, v] : plugin.env) overridden |= key == k;
    if (!overridden) env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : plugin.env) env_strings.push_back(k + "=" + v);
  env_strings.push_back("KUBERNETES_EXEC_INFO=" + info.dump());
  std::vector<std::string> arg_strings = {plugin.command};
  for (const std::string& a : plugin.args) arg_strings.push_back(a);
  std::vector<char*> argv, envp;
  for (std::string& a : arg_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, name);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return ErrnoStatus(err, name);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, plugin.command.c_str(), &actions, nullptr,
                        argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    if (rc == ENOENT) {
      return absl::FailedPreconditionError(absl::StrCat(
          name,
          ": not found (install it, or fix users[].user.exec.command in the "
          "kubeconfig; a bare name is looked up in PATH)",
          plugin.install_hint.empty() ? "" : ": ", plugin.install_hint));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": cannot start: ", strerror(rc)));
  }
  std::string out, err;
  bool finished =
      ReadBoth(out_pipe[0], err_pipe[0], &out, &err, absl::Now() + timeout);
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (!finished) kill(pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!finished) {
    return absl::DeadlineExceededError(
        absl::StrCat(name, ": still running after ",
                     absl::FormatDuration(timeout), "; killed"));
  }
  if (WIFSIGNALED(wstatus)) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": killed by signal ", WTERMSIG(wstatus), StderrForMessage(err)));
  }
  if (WEXITSTATUS(wstatus) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": exited with status ", WEXITSTATUS(wstatus),
                     StderrForMessage(err)));
  }
  return ParseExecCredential(name, plugin.api_version, out);
}

CredentialSource::CredentialSource(const ClusterConfig& config,
                                   absl::Duration exec_timeout)
    : config_(config), exec_timeout_(exec_timeout) {}

absl::StatusOr<Credentials> CredentialSource::FromTokenFile() {
  struct stat st;
  if (stat(config_.token_file.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("token file ", config_.token_file));
  }
  int64_t mtime_ns =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (!file_read_ || st.st_ino != file_ino_ || st.st_size != file_size_ ||
      mtime_ns != file_mtime_ns_) {
    std::ifstream in(config_.token_file, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::PermissionDeniedError(
          absl::StrCat("token file ", config_.token_file, ": cannot read"));
    }
    std::string token(absl::StripAsciiWhitespace(buf.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file ", config_.token_file, ": empty"));
    }
    file_token_ = std::move(token);
    file_read_ = true;
    file_ino_ = st.st_ino;
    file_size_ = st.st_size;
    file_mtime_ns_ = mtime_ns;
  }
  Credentials c;
  c.token = file_token_;
  c.cert_pem = config_.client_cert_pem;
  c.key_pem = config_.client_key_pem;
  return c;
}

absl::StatusOr<Credentials> CredentialSource::Get() {
  MutexLock lock(&mu_);
  if (config_.exec.has_value()) {
    bool fresh = exec_cached_.has_value() &&
                 (!exec_cached_->expires.has_value() ||
                  absl::Now() + kExpirySlack < *exec_cached_->expires);
    if (!fresh) {
      absl::StatusOr<ExecCredentialStatus> got =
          RunExecPlugin(*config_.exec, exec_timeout_);
      if (!got.ok()) return got.status();
      exec_cached_ = *std::move(got);
    }
    Credentials c = exec_cached_->credentials;
    if (c.cert_pem.empty()) {
      c.cert_pem = config_.client_cert_pem;
      c.key_pem = config_.client_key_pem;
    }
    return c;
  }
  if (!config_.token_file.empty()) return FromTokenFile();
  Credentials c;
  c.token = config_.token;
  c.cert_pem = config_.client_cert_pem;
  c.key_pem = config_.client_key_pem;
  return c;
}

bool CredentialSource::Invalidate() {
  MutexLock lock(&mu_);
  if (config_.exec.has_value()) {
    exec_cached_.reset();
    return true;
  }
  if (!config_.token_file.empty()) {
    file_read_ = false;
    return true;
  }
  return false;
}

}  // namespace kiln::kube
