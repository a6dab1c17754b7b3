#include "engine/run/task_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/run/outcome.h"
#include "engine/store/log_file.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Bumped whenever the engine changes how it runs tasks in a way that can
// change their results (default env, workspace layout).
constexpr char kRunnerVersion[] = "runner/v1";

std::string HashFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  cas::Sha256 sha;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    sha.Update(absl::string_view(buf, in.gcount()));
  }
  return sha.Finish().Hex();
}

// Resolves argv[0] against PATH like execvp would.
std::string FindBinary(const std::string& name, const std::string& path_env) {
  if (name.find('/') != std::string::npos) return name;
  for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  out.set_seconds(absl::IDivDuration(d, absl::Seconds(1), &d));
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Streams executor output to the attempt's log file and to events.
class LogSink : public OutputSink {
 public:
  LogSink(store::AttemptLogFile* file, const TaskRunnerContext& ctx,
          const std::string& task, int attempt,
          std::function<std::string(std::string)> mask)
      : file_(file),
        ctx_(ctx),
        task_(task),
        attempt_(attempt),
        mask_(std::move(mask)) {}

  void OnLine(v1::LogLine::Stream stream, absl::string_view line,
              absl::Time time) override {
    std::string text = mask_(std::string(line));
    if (file_ != nullptr) {
      file_
          ->AppendLine(stream == v1::LogLine::STDERR
                           ? store::LogStream::kStderr
                           : store::LogStream::kStdout,
                       text, time)
          .IgnoreError();
    }
    if (ctx_.emit) {
      v1::RunEvent e;
      auto* log = e.mutable_log();
      log->set_task(task_);
      log->set_attempt(attempt_);
      log->set_stream(stream);
      log->set_text(std::move(text));
      ctx_.emit(std::move(e));
    }
  }

 private:
  store::AttemptLogFile* file_;
  const TaskRunnerContext& ctx_;
  std::string task_;
  int attempt_;
  std::function<std::string(std::string)> mask_;
};

// Moves every entry of the extracted input `tmp` (in parent_fd) into the
// directory `path` beneath the workspace ws_fd, then removes `tmp` (also
// on failure). Earlier inputs put task-made entries in the workspace: a
// symlink on `path` is refused, never followed, and an entry is never
// replaced.
absl::Status MergeInput(int parent_fd, const std::string& tmp, int ws_fd,
                        const v1::ArtifactInput& input) {
  struct RemoveTmp {
    int parent_fd;
    const std::string& tmp;
    ~RemoveTmp() { cas::RemoveTreeAt(parent_fd, tmp).IgnoreError(); }
  } remove_tmp{parent_fd, tmp};
  absl::StatusOr<cas::UniqueFd> into =
      cas::MakeDirsBeneath(ws_fd, input.path(), 0755);
  if (!into.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.artifact(), "' path '", input.path(),
                     "': ", into.status().message()));
  }
  absl::StatusOr<cas::UniqueFd> from = cas::OpenDirBeneath(parent_fd, tmp);
  if (!from.ok()) return from.status();
  std::vector<std::string> names;
  {
    DIR* d = fdopendir(fcntl(from->get(), F_DUPFD_CLOEXEC, 0));
    if (d == nullptr) {
      return cas::ErrnoStatus(errno, "listing an extracted input");
    }
    while (dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    absl::Status st =
        cas::RenameNoReplace(from->get(), name, into->get(), name);
    if (absl::IsAlreadyExists(st)) {
      std::string shown =
          input.path().empty() ? name : absl::StrCat(input.path(), "/", name);
      return absl::AlreadyExistsError(absl::StrCat("two inputs both provide ",
                                                   shown, " (input '",
                                                   input.artifact(), "')"));
    }
    if (!st.ok()) {
      return absl::InternalError(
          absl::StrCat("moving input into the workspace: ", st.message()));
    }
  }
  return absl::OkStatus();
}

// Did the task produce `path` (beneath ws_fd, without following symlinks)?
absl::Status CheckProduced(int ws_fd, const std::string& path) {
  absl::StatusOr<std::vector<std::string>> parts = cas::SplitRelativePath(path);
  if (!parts.ok()) return parts.status();
  if (parts->empty()) return absl::OkStatus();  // the whole workspace
  std::string name = parts->back();
  parts->pop_back();
  absl::StatusOr<cas::UniqueFd> dir =
      cas::OpenDirBeneath(ws_fd, absl::StrJoin(*parts, "/"));
  if (!dir.ok()) return dir.status();
  struct stat st;
  if (fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::NotFoundError("was not produced");
  }
  return absl::OkStatus();
}

}  // namespace

EngineTaskRunner::EngineTaskRunner(TaskRunnerContext context)
    : ctx_(std::move(context)) {
  for (const auto& [name, value] : ctx_.secrets) {
    if (value.size() < 3) continue;  // too short to mask meaningfully
    secret_forms_.push_back(value);
    secret_forms_.push_back(absl::Base64Escape(value));
    secret_forms_.push_back(absl::WebSafeBase64Escape(value));
    std::string json = absl::StrReplaceAll(
        value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
    secret_forms_.push_back(json);
    for (absl::string_view line : absl::StrSplit(value, '\n')) {
      if (line.size() >= 3) secret_forms_.emplace_back(line);
    }
  }
  // Longest first, so a secret containing another is masked whole.
  std::sort(secret_forms_.begin(), secret_forms_.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() > b.size();
            });
}

std::string EngineTaskRunner::Mask(std::string line) const {
  for (const std::string& s : secret_forms_) {
    if (line.find(s) != std::string::npos) {
      line = absl::StrReplaceAll(line, {{s, "***"}});
    }
  }
  return line;
}

std::string EngineTaskRunner::SourcePath(const std::string& relative) const {
  std::string root = ctx_.source_dir.empty() ? "." : ctx_.source_dir;
  return relative.empty() ? root : absl::StrCat(root, "/", relative);
}

absl::StatusOr<std::string> EngineTaskRunner::ArtifactDigest(
    const std::string& artifact,
    const std::map<std::string, v1::TaskStatus>& fin) const {
  if (artifact == "source" && !ctx_.source_digest.empty()) {
    return ctx_.source_digest;
  }
  for (const auto& [name, status] : fin) {
    auto it = status.outputs().find(artifact);
    if (it != status.outputs().end()) return it->second;
  }
  return absl::NotFoundError(absl::StrCat(
      "artifact '", artifact, "' was not produced by any task this one needs"));
}

std::string EngineTaskRunner::PlatformFor(const v1::Task& task) {
  std::string platform =
      absl::StrCat(ExecutorFor(task)->Platform(), ";", kRunnerVersion);
  if (!task.has_run()) return platform;
  const v1::RunSpec& run = task.run();
  std::string image = run.image().empty() ? "host" : run.image();
  absl::StrAppend(&platform, ";image=", image);
  if (image != "host") return platform;
  // The host root is the image: identify it by its OS release and by the
  // binary the task invokes (what the key cannot otherwise see).
  MutexLock lock(&mu_);
  if (os_release_digest_.empty()) {
    os_release_digest_ = HashFile("/etc/os-release");
    if (os_release_digest_.empty()) os_release_digest_ = "none";
  }
  absl::StrAppend(&platform, ";os=", os_release_digest_.substr(0, 16));
  if (run.command_size() > 0) {
    std::string path_env = kDefaultPath;
    for (const auto& e : run.env()) {
      if (e.name() == "PATH") path_env = e.value();
    }
    std::string bin = FindBinary(run.command(0), path_env);
    struct stat st;
    if (!bin.empty() && bin[0] == '/' && stat(bin.c_str(), &st) == 0) {
      std::string stamp = absl::StrCat(st.st_size, ":", st.st_mtim.tv_sec, ":",
                                       st.st_mtim.tv_nsec, ":", st.st_ino);
      std::string& cached = binary_digests_[bin];
      if (!absl::StartsWith(cached, stamp + "=")) {
        cached = absl::StrCat(stamp, "=", HashFile(bin));
      }
      absl::StrAppend(&platform,
                      ";bin=", cached.substr(cached.find('=') + 1, 16));
    }
  }
  return platform;
}

absl::optional<store::ActionResult> EngineTaskRunner::Lookup(
    const std::string& key) {
  auto hit = ctx_.action_cache->Lookup(key);
  if (!hit.ok() || !hit->has_value()) return absl::nullopt;
  // Every output must still be in the store, or the hit is worthless. A
  // damaged index entry is dropped here, so the task runs again now
  // instead of its consumers failing in every run.
  for (const auto& [artifact, digest] : (*hit)->outputs) {
    auto d = cas::Digest::Parse(digest);
    if (!d.ok()) return absl::nullopt;
    if (!ctx_.artifacts->VerifiedArchiveOf(*d).ok()) return absl::nullopt;
  }
  return std::move(**hit);
}

absl::optional<AttemptOutcome> EngineTaskRunner::CachedOutcome(
    const std::string& key) {
  auto hit = Lookup(key);
  if (!hit.has_value()) return absl::nullopt;
  AttemptOutcome o = Outcome(v1::TASK_CACHED, "cache hit");
  o.cache_key = key;
  o.exit_code = hit->exit_code;
  o.outputs = hit->outputs;
  o.results = hit->results;
  return o;
}

std::string EngineTaskRunner::WorkDir(const v1::Task& task, int attempt) const {
  return absl::StrCat(ctx_.store_dir, "/work/", ctx_.run_id, "/",
                      store::SafeFileName(task.name()), ".", attempt);
}

absl::StatusOr<cas::UniqueFd> EngineTaskRunner::OpenWorkParent() const {
  absl::StatusOr<cas::UniqueFd> store = cas::OpenTrustedDir(ctx_.store_dir);
  if (!store.ok()) return store.status();
  return cas::MakeDirsBeneath(store->get(), absl::StrCat("work/", ctx_.run_id),
                              0755);
}

void EngineTaskRunner::Record(const std::string& key, const v1::Task& task,
                              const std::vector<KeyComponent>& components,
                              const AttemptOutcome& outcome,
                              const std::string& log_path) {
  store::ActionResult r;
  r.exit_code = outcome.exit_code;
  r.outputs = outcome.outputs;
  r.results = outcome.results;
  r.log_path = log_path;
  r.pipeline_name = ctx_.pipeline_name;
  r.task_name = task.name();
  r.run_id = ctx_.run_id;
  for (const auto& c : components) {
    r.components.push_back(
        store::KeyComponent{c.name, absl::StrCat(c.digest, " ", c.summary)});
  }
  ctx_.action_cache->Put(key, r).IgnoreError();
}

AttemptOutcome EngineTaskRunner::RunAttempt(
    const v1::Task& task, int attempt,
    const std::map<std::string, v1::TaskStatus>& finished,
    CancelSignal* cancel) {
  // The attempt number is durable before the attempt does anything, so a
  // crash anywhere below never lets a resume reuse it (run_store.h).
  if (ctx_.run_store != nullptr) {
    absl::Status reserved =
        ctx_.run_store->ReserveAttempt(ctx_.run_id, task.name(), attempt);
    if (!reserved.ok()) {
      return Failed(
          absl::StrCat("recording attempt ", attempt, ": ", reserved.message()),
          true);
    }
  }
  pipeline::SubstitutionContext subst = ctx_.substitution;
  for (const auto& [name, status] : finished) {
    for (const auto& [k, v] : status.results()) {
      subst.task_outputs[name][k] = v;
    }
  }
  auto resolved = pipeline::SubstituteTask(task, subst);
  if (!resolved.ok()) return Failed(std::string(resolved.status().message()));
  // The key sees secrets only as HMACs.
  pipeline::SubstitutionContext key_subst = subst;
  for (const auto& [name, value] : ctx_.secrets) {
    key_subst.params[name] = HmacToken(ctx_.hmac_key, value);
  }
  auto key_view = pipeline::SubstituteTask(task, key_subst);
  if (!key_view.ok()) return Failed(std::string(key_view.status().message()));

  AttemptOutcome out;
  switch (task.kind_case()) {
    case v1::Task::kRun:
      out = RunCommand(*resolved, *key_view, attempt, finished, cancel);
      break;
    case v1::Task::kStash:
      out = Stash(*resolved);
      break;
    case v1::Task::kUnstash:
      out = Unstash(*resolved, finished);
      break;
    case v1::Task::kRender:
      out = Render(*resolved, *key_view, attempt, finished);
      break;
    case v1::Task::kContainerize:
      out = Outcome(v1::TASK_SKIPPED,
                    "containerize is not implemented yet in this kiln");
      break;
    case v1::Task::kDeploy:
      out = Outcome(v1::TASK_SKIPPED,
                    "deploy is not implemented yet (no Kubernetes executor)");
      break;
    default:
      out = Failed("task has no kind");
  }
  if ((out.state == v1::TASK_SUCCEEDED || out.state == v1::TASK_CACHED) &&
      ctx_.run_store != nullptr) {
    store::TaskOutputs rec;
    rec.cache_key = out.cache_key;
    rec.outputs = out.outputs;
    rec.results = out.results;
    ctx_.run_store->SetTaskOutputs(ctx_.run_id, task.name(), rec).IgnoreError();
  }
  return out;
}

AttemptOutcome EngineTaskRunner::RunCommand(
    const v1::Task& task, const v1::Task& key_view, int attempt,
    const std::map<std::string, v1::TaskStatus>& fin, CancelSignal* cancel) {
  const v1::RunSpec& run = task.run();
  if (run.command_size() == 0) return Failed("run: empty command");
  std::vector<std::pair<std::string, std::string>> inputs;
  for (const auto& input : task.inputs()) {
    auto digest = ArtifactDigest(input.artifact(), fin);
    if (!digest.ok()) return Failed(std::string(digest.status().message()));
    inputs.emplace_back(input.artifact(), *digest);
  }
  bool cacheable = !task.has_cache() || task.cache();
  TaskKeyInputs key_in;
  key_in.task = &key_view;
  key_in.input_digests = inputs;
  key_in.platform = PlatformFor(task);
  TaskKey key = ComputeTaskKey(key_in);
  if (cacheable) {
    if (auto hit = CachedOutcome(key.key)) return *hit;
  }

  // A fresh workspace with the inputs unstashed. Everything in it is
  // task-made (other tasks' outputs, then this task's work): every engine
  // operation on it stays beneath its fd and never follows a symlink.
  std::string workspace = WorkDir(task, attempt);
  std::string work_parent = workspace.substr(0, workspace.rfind('/'));
  std::string ws_name = workspace.substr(workspace.rfind('/') + 1);
  absl::StatusOr<cas::UniqueFd> parent = OpenWorkParent();
  if (!parent.ok()) {
    return Failed(
        absl::StrCat("creating workspace: ", parent.status().message()), true);
  }
  cas::RemoveTreeAt(parent->get(), ws_name).IgnoreError();
  struct Cleanup {
    int parent_fd;
    std::string name;
    bool keep;
    ~Cleanup() {
      if (!keep) cas::RemoveTreeAt(parent_fd, name).IgnoreError();
    }
  } cleanup{parent->get(), ws_name, ctx_.keep_workspaces};
  absl::StatusOr<cas::UniqueFd> ws =
      cas::MakeDirAt(parent->get(), ws_name, 0755);
  if (!ws.ok()) {
    return Failed(absl::StrCat("creating workspace: ", ws.status().message()),
                  true);
  }
  for (int i = 0; i < task.inputs_size(); ++i) {
    const auto& input = task.inputs(i);
    auto digest = cas::Digest::Parse(inputs[i].second);
    if (!digest.ok()) return Failed(std::string(digest.status().message()));
    std::string tmp = cas::TempName("input");
    absl::Status s = ctx_.artifacts->UnstashAt(*digest, parent->get(), tmp,
                                               work_parent, false);
    if (!s.ok()) {
      return Failed(
          absl::StrCat("unstashing ", input.artifact(), ": ", s.message()));
    }
    s = MergeInput(parent->get(), tmp, ws->get(), input);
    if (!s.ok()) return Failed(std::string(s.message()));
  }

  store::AttemptLogFile::Options log_options;
  log_options.max_bytes = task.hints().resources().max_log_bytes() > 0
                              ? static_cast<int64_t>(std::min<uint64_t>(
                                    task.hints().resources().max_log_bytes(),
                                    std::numeric_limits<int64_t>::max()))
                              : ctx_.max_log_file_bytes;
  auto log = store::AttemptLogFile::Open(ctx_.store_dir, ctx_.run_id,
                                         task.name(), attempt, log_options);
  std::unique_ptr<store::AttemptLogFile> log_file;
  if (log.ok()) log_file = std::move(*log);

  v1::ExecRequest req;
  req.set_run_id(ctx_.run_id);
  req.set_task(task.name());
  req.set_attempt(attempt);
  for (const auto& a : run.command()) req.add_argv(a);
  auto& env = *req.mutable_env();
  env["PATH"] = kDefaultPath;
  env["HOME"] = "/tmp";
  env["TMPDIR"] = "/tmp";
  env["LANG"] = "C.UTF-8";
  env["KILN_RUN_ID"] = ctx_.run_id;
  env["KILN_TASK"] = task.name();
  env["KILN_ATTEMPT"] = absl::StrCat(attempt);
  for (const auto& e : run.env()) env[e.name()] = e.value();
  req.set_workspace(workspace);
  req.set_workdir(run.workdir());
  req.set_network(run.network());
  auto* limits = req.mutable_limits();
  if (task.hints().has_timeout()) {
    *limits->mutable_timeout() = task.hints().timeout();
  }
  limits->set_memory_bytes(task.hints().resources().memory_bytes());
  limits->set_max_pids(task.hints().resources().max_pids());
  limits->set_max_log_bytes(task.hints().resources().max_log_bytes()
                                ? task.hints().resources().max_log_bytes()
                                : 64 << 20);
  *limits->mutable_kill_grace() = ToProto(absl::Seconds(5));

  LogSink sink(log_file.get(), ctx_, task.name(), attempt,
               [this](std::string l) { return Mask(std::move(l)); });
  auto started = ExecutorFor(task)->Start(req, &sink);
  if (!started.ok()) {
    return Failed(absl::StrCat("executor: ", started.status().message()), true);
  }
  std::unique_ptr<Execution> exec = std::move(*started);
  int cb = cancel->OnCancel([&exec] { exec->Cancel(); });
  v1::ExecResult result = exec->Wait();
  cancel->RemoveCallback(cb);
  std::string log_path;
  if (log_file != nullptr) {
    log_file->Close().IgnoreError();
    log_path = log_file->relative_path();
    if (ctx_.run_store != nullptr) {
      ctx_.run_store
          ->RecordAttemptLog(ctx_.run_id, task.name(), attempt, log_path,
                             log_file->bytes())
          .IgnoreError();
    }
  }

  AttemptOutcome o;
  o.cache_key = key.key;
  o.exit_code = result.exit_code();
  switch (result.status()) {
    case v1::EXITED:
      if (result.exit_code() == 0) {
        o.state = v1::TASK_SUCCEEDED;
      } else {
        o.state = v1::TASK_FAILED;
        o.reason = absl::StrCat("exit code ", result.exit_code());
      }
      break;
    case v1::TIMED_OUT:
      o.state = v1::TASK_TIMED_OUT;
      o.reason =
          absl::StrCat("timed out after ",
                       absl::FormatDuration(FromProto(task.hints().timeout())));
      break;
    case v1::CANCELLED:
      o.state = v1::TASK_CANCELLED;
      o.retryable = false;
      o.reason = "cancelled";
      break;
    case v1::SETUP_FAILED:
      o.state = v1::TASK_FAILED;
      o.retryable = false;
      o.reason = absl::StrCat("sandbox setup failed: ", result.message());
      break;
    default:
      o.state = v1::TASK_FAILED;
      o.reason = result.message().empty() ? v1::ExecStatus_Name(result.status())
                                          : result.message();
  }
  if (!result.message().empty() && o.state != v1::TASK_SUCCEEDED &&
      o.reason.find(result.message()) == std::string::npos) {
    absl::StrAppend(&o.reason, " (", result.message(), ")");
  }
  if (o.state != v1::TASK_SUCCEEDED) return o;

  // Outputs.
  for (const auto& output : task.outputs()) {
    for (const auto& p : output.paths()) {
      absl::Status produced = CheckProduced(ws->get(), p);
      if (!produced.ok()) {
        return Failed(absl::StrCat("output '", output.artifact(), "': path '",
                                   p, "' ", produced.message()));
      }
    }
    std::vector<std::string> paths(output.paths().begin(),
                                   output.paths().end());
    auto stashed = ctx_.artifacts->StashPaths(workspace, paths);
    if (!stashed.ok()) {
      return Failed(absl::StrCat("stashing output '", output.artifact(),
                                 "': ", stashed.status().message()));
    }
    o.outputs[output.artifact()] = stashed->tree.ToString();
  }
  if (!run.report().empty()) {
    auto stashed = ctx_.artifacts->StashPaths(workspace, {run.report()});
    if (stashed.ok()) o.results["report"] = stashed->tree.ToString();
  }
  bool cacheable_now = !task.has_cache() || task.cache();
  if (cacheable_now) Record(key.key, task, key.components, o, log_path);
  return o;
}

}  // namespace kiln
