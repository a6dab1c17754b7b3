#include "engine/agent/agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/agent/blob_client.h"
#include "engine/agent/spec.h"
#include "engine/archive/safe_extract.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_archive.h"
#include "engine/cas/tree_digest.h"
#include "engine/cas/tree_walk.h"
#include "engine/exec/workspace_merge.h"

extern char** environ;

namespace kiln::agent {
namespace {

void Log(const std::string& line) {
  std::string text = absl::StrCat("kiln-agent: ", line, "\n");
  ssize_t ignored = write(2, text.data(), text.size());
  (void)ignored;
}

// Writes `text` to `path` (replacing it). Best effort is not enough: the
// executor reads it, so a failure is logged.
void WriteResult(const std::string& path, const AgentResult& result) {
  std::string text = ResultJson(result);
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  bool ok = fd >= 0;
  size_t done = 0;
  while (ok && done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    Log(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
}

BlobClient NewClient(const AgentConfig& c) {
  BlobClientOptions o;
  o.server = c.server;
  o.token = c.token;
  o.ca_pem = c.ca_pem;
  return BlobClient(o);
}

absl::Status CheckConnection(const AgentConfig& c) {
  if (c.server.empty()) {
    return absl::InvalidArgumentError("KILN_AGENT_SERVER is not set");
  }
  if (c.token.empty()) {
    return absl::InvalidArgumentError("KILN_AGENT_TOKEN is not set");
  }
  return absl::OkStatus();
}

// Copies the tree at src_fd/name to dst_fd/name: directories, regular files
// (mode kept), symlinks as links. Never follows a link.
absl::Status CopyTree(int src_dir, int dst_dir, const std::string& name,
                      int depth) {
  if (depth > 64) return absl::InvalidArgumentError("bundle nested too deep");
  struct stat st;
  if (fstatat(src_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return cas::ErrnoStatus(errno, absl::StrCat("stat ", name));
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(PATH_MAX, '\0');
    ssize_t n = readlinkat(src_dir, name.c_str(), target.data(), target.size());
    if (n < 0) return cas::ErrnoStatus(errno, absl::StrCat("readlink ", name));
    target.resize(static_cast<size_t>(n));
    if (symlinkat(target.c_str(), dst_dir, name.c_str()) != 0) {
      return cas::ErrnoStatus(errno, absl::StrCat("symlink ", name));
    }
    return absl::OkStatus();
  }
  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(dst_dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
      return cas::ErrnoStatus(errno, absl::StrCat("mkdir ", name));
    }
    cas::UniqueFd from(openat(src_dir, name.c_str(),
                              O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    cas::UniqueFd to(openat(dst_dir, name.c_str(),
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (from.get() < 0 || to.get() < 0) {
      return cas::ErrnoStatus(errno, absl::StrCat("open ", name));
    }
    DIR* d = fdopendir(fcntl(from.get(), F_DUPFD_CLOEXEC, 0));
    if (d == nullptr) return cas::ErrnoStatus(errno, "opendir");
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
        names.emplace_back(e->d_name);
      }
    }
    closedir(d);
    for (const std::string& child : names) {
      absl::Status s = CopyTree(from.get(), to.get(), child, depth + 1);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not a file, directory or symlink"));
  }
  cas::UniqueFd in(
      openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (in.get() < 0) return cas::ErrnoStatus(errno, absl::StrCat("open ", name));
  cas::UniqueFd out(openat(dst_dir, name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           st.st_mode & 0755));
  if (out.get() < 0) {
    return cas::ErrnoStatus(errno, absl::StrCat("create ", name));
  }
  std::string buf(1 << 20, '\0');
  while (true) {
    ssize_t n = read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return cas::ErrnoStatus(errno, absl::StrCat("read ", name));
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out.get(), buf.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return cas::ErrnoStatus(errno, absl::StrCat("write ", name));
      done += w;
    }
  }
  if (fchmod(out.get(), st.st_mode & 0755) != 0) {
    return cas::ErrnoStatus(errno, absl::StrCat("chmod ", name));
  }
  return absl::OkStatus();
}

// Downloads, verifies and extracts one input into the workspace.
absl::Status FetchInput(BlobClient& client, int ws_fd, const InputSpec& in) {
  absl::StatusOr<cas::Digest> tree = cas::Digest::Parse(in.tree);
  absl::StatusOr<cas::Digest> archive = cas::Digest::Parse(in.archive);
  if (!tree.ok()) return tree.status();
  if (!archive.ok()) return archive.status();
  // The path is checked before anything is downloaded.
  absl::StatusOr<std::vector<std::string>> parts =
      cas::SplitRelativePath(in.path);
  if (!parts.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("path '", in.path, "': ", parts.status().message()));
  }
  absl::StatusOr<std::unique_ptr<Download>> download =
      client.StartDownload(*archive);
  if (!download.ok()) return download.status();
  Download* source = download->get();
  // The archive's bytes, then the extracted tree, are checked before the
  // extraction becomes visible.
  auto verify = [&](const std::vector<cas::TreeEntry>& entries) {
    absl::Status whole = source->Finish();
    if (!whole.ok()) return whole;
    absl::StatusOr<cas::Digest> got = cas::ComputeTreeDigest(entries);
    if (!got.ok()) return got.status();
    if (*got != *tree) {
      return absl::DataLossError(
          absl::StrCat("archive ", in.archive, " extracts to tree ",
                       got->ToString(), ", not ", in.tree));
    }
    return absl::OkStatus();
  };
  std::string tmp = cas::TempName("input");
  archive::ExtractOptions options;
  absl::StatusOr<std::vector<cas::TreeEntry>> extracted =
      archive::ExtractArchiveAt(std::move(*download), ws_fd, tmp, "workspace",
                                options, verify);
  if (!extracted.ok()) {
    absl::Status removed = cas::RemoveTreeBeneath(ws_fd, tmp);
    if (removed.ok()) return extracted.status();
    return absl::Status(
        extracted.status().code(),
        absl::StrCat(extracted.status().message(),
                     " (and its scratch directory was not removed: ",
                     removed.message(), ")"));
  }
  return MergeInput(ws_fd, tmp, ws_fd, in.path, "");
}

absl::StatusOr<AgentSpec> LoadSpec(const AgentConfig& c) {
  if (c.spec_json.empty()) {
    return absl::InvalidArgumentError("KILN_AGENT_SPEC is not set");
  }
  return ParseSpec(c.spec_json);
}

}  // namespace

int Fetch(const AgentConfig& config) {
  AgentResult result;
  std::string out_path = config.kiln_out_dir + "/fetch.json";
  auto fail = [&](const std::string& status, const std::string& message) {
    result.status = status;
    result.message = message;
    Log(message);
    WriteResult(out_path, result);
    return kExitAgentFailed;
  };
  absl::StatusOr<AgentSpec> spec = LoadSpec(config);
  if (!spec.ok())
    return fail("SETUP_FAILED", std::string(spec.status().message()));
  if (absl::Status s = CheckConnection(config); !s.ok()) {
    return fail("SETUP_FAILED", std::string(s.message()));
  }
  // The bundle, for the task container (which mounts the volume at /kiln).
  {
    absl::StatusOr<cas::UniqueFd> src = cas::OpenTrustedDir(config.kiln_dir);
    absl::StatusOr<cas::UniqueFd> dst =
        cas::OpenTrustedDir(config.kiln_out_dir);
    if (!src.ok() || !dst.ok()) {
      return fail(
          "SETUP_FAILED",
          absl::StrCat("opening ", config.kiln_dir, " and ",
                       config.kiln_out_dir, ": ",
                       (src.ok() ? dst.status() : src.status()).message()));
    }
    absl::Status copied = CopyTree(src->get(), dst->get(), "agent", 0);
    if (!copied.ok()) {
      return fail("SETUP_FAILED",
                  absl::StrCat("copying the agent to ", config.kiln_out_dir,
                               ": ", copied.message()));
    }
  }
  absl::StatusOr<cas::UniqueFd> ws = cas::OpenTrustedDir(config.workspace);
  if (!ws.ok()) {
    return fail("SETUP_FAILED", absl::StrCat("workspace ", config.workspace,
                                             ": ", ws.status().message()));
  }
  BlobClient client = NewClient(config);
  for (const InputSpec& in : spec->inputs) {
    absl::Status s = FetchInput(client, ws->get(), in);
    if (!s.ok()) {
      return fail("INPUTS_FAILED", absl::StrCat("input '", in.artifact, "' (",
                                                in.tree, "): ", s.message()));
    }
  }
  result.status = "EXITED";
  result.message = absl::StrCat("fetched ", spec->inputs.size(), " inputs");
  WriteResult(out_path, result);
  return 0;
}

namespace {

// Packs `paths` of the workspace (all of it if empty) the way the engine's
// stash does, uploads the archive unless the server has it, and returns
// {tree, archive}.
absl::StatusOr<ArtifactRef> PackAndUpload(
    BlobClient& client, int ws_fd, const std::string& scratch_dir,
    const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    absl::Status produced = CheckProduced(ws_fd, p);
    if (!produced.ok()) {
      return absl::Status(produced.code(),
                          absl::StrCat("path '", p, "' ", produced.message()));
    }
  }
  absl::StatusOr<std::vector<cas::WalkedEntry>> walked =
      paths.empty() ? cas::WalkTree(ws_fd, "workspace")
                    : cas::WalkPaths(ws_fd, "workspace", paths);
  if (!walked.ok()) return walked.status();
  // The archive goes to an unnamed file (never seen by anyone else).
  int fd = open(scratch_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  std::string named;
  if (fd < 0) {
    named = absl::StrCat(scratch_dir, "/", cas::TempName("archive"));
    fd = open(named.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd >= 0) unlink(named.c_str());
  }
  if (fd < 0) {
    return cas::ErrnoStatus(errno,
                            absl::StrCat("scratch file in ", scratch_dir));
  }
  cas::UniqueFd file(fd);
  cas::Sha256 hash;
  absl::StatusOr<std::vector<cas::TreeEntry>> entries = cas::WriteTreeArchive(
      ws_fd, "workspace", *walked, 2, [&](absl::string_view bytes) {
        hash.Update(bytes);
        size_t done = 0;
        while (done < bytes.size()) {
          ssize_t n =
              write(file.get(), bytes.data() + done, bytes.size() - done);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return cas::ErrnoStatus(errno, "writing the archive");
          done += static_cast<size_t>(n);
        }
        return absl::OkStatus();
      });
  if (!entries.ok()) return entries.status();
  absl::StatusOr<cas::Digest> tree = cas::ComputeTreeDigest(*entries);
  if (!tree.ok()) return tree.status();
  cas::Digest archive = hash.Finish();
  absl::StatusOr<std::vector<std::string>> missing =
      client.FindMissing({archive.ToString()});
  if (!missing.ok()) return missing.status();
  if (!missing->empty()) {
    if (lseek(file.get(), 0, SEEK_SET) != 0) {
      return cas::ErrnoStatus(errno, "rewinding the archive");
    }
    absl::Status up = client.Upload(archive, file.get());
    if (!up.ok()) return up;
  }
  return ArtifactRef{tree->ToString(), archive.ToString()};
}

volatile sig_atomic_t g_unused = 0;
void NoteSignal(int) { g_unused = 1; }

std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (absl::StartsWith(*e, "KILN_AGENT_")) continue;
    env.emplace_back(*e);
  }
  return env;
}

}  // namespace

int Run(const AgentConfig& config, const std::vector<std::string>& argv) {
  AgentResult result;
  std::string out_path = config.kiln_dir + "/result.json";
  auto fail = [&](const std::string& status, const std::string& message) {
    result.status = status;
    result.message = message;
    Log(message);
    WriteResult(out_path, result);
    return kExitAgentFailed;
  };
  if (argv.empty()) return fail("SETUP_FAILED", "run: no command after --");
  absl::StatusOr<AgentSpec> spec = LoadSpec(config);
  if (!spec.ok())
    return fail("SETUP_FAILED", std::string(spec.status().message()));
  bool transfers = !spec->outputs.empty() || !spec->report.empty();
  if (transfers) {
    if (absl::Status s = CheckConnection(config); !s.ok()) {
      return fail("SETUP_FAILED", std::string(s.message()));
    }
  }
  absl::StatusOr<cas::UniqueFd> ws = cas::OpenTrustedDir(config.workspace);
  if (!ws.ok()) {
    return fail("SETUP_FAILED", absl::StrCat("workspace ", config.workspace,
                                             ": ", ws.status().message()));
  }
  absl::StatusOr<cas::UniqueFd> workdir =
      spec->workdir.empty() ? cas::OpenDirBeneath(ws->get(), "")
                            : cas::OpenDirBeneath(ws->get(), spec->workdir);
  if (!workdir.ok()) {
    return fail("SETUP_FAILED", absl::StrCat("workdir '", spec->workdir, "': ",
                                             workdir.status().message()));
  }

  // Everything the child needs is prepared before fork (no allocation
  // after it).
  std::vector<std::string> env = ChildEnvironment();
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  // SIGTERM/SIGINT/SIGCHLD are taken with sigtimedwait; a handler (not
  // SIG_DFL) so that, as PID 1 of a container, they are delivered at all.
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = NoteSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGCHLD, &sa, nullptr);
  sigset_t wait_set, old_mask;
  sigemptyset(&wait_set);
  sigaddset(&wait_set, SIGTERM);
  sigaddset(&wait_set, SIGINT);
  sigaddset(&wait_set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &wait_set, &old_mask);

  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    return fail("SETUP_FAILED", absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const int workdir_fd = workdir->get();
  pid_t pid = fork();
  if (pid < 0) {
    return fail("SETUP_FAILED", absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &dfl, nullptr);
    sigaction(SIGINT, &dfl, nullptr);
    sigaction(SIGCHLD, &dfl, nullptr);
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    if (fchdir(workdir_fd) != 0) {
      int e = errno;
      ssize_t ignored = write(exec_pipe[1], &e, sizeof(e));
      (void)ignored;
      _exit(127);
    }
    execvpe(argp[0], argp.data(), envp.data());
    int e = errno;
    ssize_t ignored = write(exec_pipe[1], &e, sizeof(e));
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also here: no race with a signal to the group
  close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t got;
  do {
    got = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (got < 0 && errno == EINTR);
  close(exec_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof(exec_errno))) {
    Log(absl::StrCat("cannot run ", argv[0], ": ", std::strerror(exec_errno)));
  }

  const absl::Time start = absl::Now();
  absl::Time deadline = spec->timeout_ms > 0
                            ? start + absl::Milliseconds(spec->timeout_ms)
                            : absl::InfiniteFuture();
  absl::Time kill_at = absl::InfiniteFuture();
  bool timed_out = false;
  int status = 0;
  while (true) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    absl::Time now = absl::Now();
    if (!timed_out && now >= deadline) {
      timed_out = true;
      kill(-pid, SIGTERM);
      kill_at = now + absl::Milliseconds(config.kill_grace_ms);
    }
    if (now >= kill_at) {
      kill(-pid, SIGKILL);
      kill_at = absl::InfiniteFuture();
    }
    absl::Time next =
        std::min(timed_out ? kill_at : deadline, now + absl::Seconds(1));
    absl::Duration wait = std::max(next - now, absl::Milliseconds(1));
    struct timespec ts = absl::ToTimespec(wait);
    int sig = sigtimedwait(&wait_set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) kill(-pid, sig);
  }
  // Nothing of the task outlives it (background processes of its group).
  kill(-pid, SIGKILL);

  if (WIFSIGNALED(status)) {
    result.status = timed_out ? "TIMED_OUT" : "SIGNALED";
    result.signal = WTERMSIG(status);
    result.exit_code = 128 + result.signal;
  } else {
    result.status = timed_out ? "TIMED_OUT" : "EXITED";
    result.exit_code = WEXITSTATUS(status);
  }
  if (timed_out) {
    result.message = absl::StrCat("timed out after ", spec->timeout_ms, " ms");
  } else if (exec_errno != 0) {
    result.message =
        absl::StrCat("cannot run ", argv[0], ": ", std::strerror(exec_errno));
  }
  if (result.status == "EXITED" && result.exit_code == 0 && transfers) {
    BlobClient client = NewClient(config);
    for (const OutputSpec& output : spec->outputs) {
      absl::StatusOr<ArtifactRef> ref =
          PackAndUpload(client, ws->get(), config.kiln_dir, output.paths);
      if (!ref.ok()) {
        result.outputs.clear();
        return fail("OUTPUTS_FAILED",
                    absl::StrCat("output '", output.artifact,
                                 "': ", ref.status().message()));
      }
      result.outputs[output.artifact] = *ref;
    }
    if (!spec->report.empty()) {
      absl::StatusOr<ArtifactRef> ref =
          PackAndUpload(client, ws->get(), config.kiln_dir, {spec->report});
      if (ref.ok()) {
        result.has_report = true;
        result.report = *ref;
      } else if (!absl::IsNotFound(ref.status())) {
        result.warnings.push_back(absl::StrCat("report '", spec->report,
                                               "': ", ref.status().message()));
      }
    }
  }
  WriteResult(out_path, result);
  return result.exit_code;
}

}  // namespace kiln::agent
