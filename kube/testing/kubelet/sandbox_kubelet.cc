#include "kube/testing/kubelet/sandbox_kubelet.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/mutex.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "kube/testing/kubelet/container_config.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using json = nlohmann::json;

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// Returns one prepared image for its reference (the container's, with the
// working directory the container asks for).
class FixedImage : public ImageAccess {
 public:
  explicit FixedImage(PreparedImage image) : image_(std::move(image)) {}
  absl::StatusOr<PreparedImage> Prepare(const std::string& reference) override {
    if (reference != image_.reference) {
      return absl::NotFoundError(
          absl::StrCat("not this pod's image: ", reference));
    }
    return image_;
  }

 private:
  const PreparedImage image_;
};

// Creates `relative` (a clean relative path) beneath the directory fd,
// never following a symlink; OK when it exists as a directory.
absl::Status MakeDirsBeneath(int dir_fd, const std::string& relative) {
  int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("dup");
  for (absl::string_view part :
       absl::StrSplit(relative, '/', absl::SkipEmpty())) {
    std::string name(part);
    if (mkdirat(fd, name.c_str(), 0755) != 0 && errno != EEXIST) {
      int e = errno;
      close(fd);
      return absl::InternalError(
          absl::StrCat("mkdir ", name, ": ", std::strerror(e)));
    }
    int next = openat(fd, name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    if (next < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " is not a directory: ", std::strerror(e)));
    }
    fd = next;
  }
  close(fd);
  return absl::OkStatus();
}

// Reads at most `limit` bytes of `relative` beneath `dir`, resolving no
// symlink and never leaving `dir`; "" when absent.
std::string ReadBeneath(const std::string& dir, const std::string& relative,
                        size_t limit) {
  int dir_fd =
      open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return "";
  struct open_how how = {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(
      syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof(how)));
  close(dir_fd);
  if (fd < 0) return "";
  struct stat st;
  std::string out;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    out.resize(limit);
    size_t got = 0;
    while (got < limit) {
      ssize_t n = read(fd, out.data() + got, limit - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
  }
  close(fd);
  return out;
}

}  // namespace

// What the hooks reach: the running pods, shared with the hooks so that a
// hook in flight while the kubelet is destroyed finds it stopped.
class SandboxKubelet::Core {
 public:
  Core(FakeApiServer* server, SandboxKubeletOptions options)
      : server_(server), options_(std::move(options)) {}

  void OnCreated(const json& pod);
  void OnDeleting(const json& pod);
  void Stop();
  int pods_started() const {
    MutexLock lock(&mu_);
    return started_;
  }

 private:
  class PodRun;
  FakeApiServer* const server_;
  const SandboxKubeletOptions options_;
  mutable Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  std::list<std::unique_ptr<PodRun>> pods_ ABSL_GUARDED_BY(mu_);
};

// One pod: its worker thread runs the containers; a monitor thread enforces
// the deadline and notices the pod vanishing.
class SandboxKubelet::Core::PodRun {
 public:
  PodRun(Core* core, json pod) : core_(core), pod_(std::move(pod)) {
    ns_ = Str(pod_["metadata"], "namespace");
    name_ = Str(pod_["metadata"], "name");
    uid_ = Str(pod_["metadata"], "uid");
    dir_ = absl::StrCat(core_->options_.root, "/", ns_, "_", name_, "_",
                        uid_.substr(0, 13));
  }
  ~PodRun() {
    if (worker_.joinable()) worker_.join();
  }
  void Launch() {
    worker_ = std::thread([this] { Run(); });
  }
  // The worker has done everything (joining it does not block).
  bool finished() const { return finished_.load(); }
  bool Is(const json& pod) const {
    return Str(pod["metadata"], "namespace") == ns_ &&
           Str(pod["metadata"], "name") == name_ &&
           Str(pod["metadata"], "uid") == uid_;
  }
  // A graceful deletion (or the kubelet stopping: grace 0).
  void Stop(absl::Duration grace, bool finalize) {
    MutexLock lock(&mu_);
    if (!stopping_ || grace < grace_) grace_ = grace;
    stopping_ = true;
    finalize_ = finalize_ || finalize;
    for (Execution* e : running_) CancelWithGrace(e, grace_);
  }

 private:
  void Run();
  void Monitor();
  // Runs one container to its end; false when the pod stopped (deleted,
  // deadline) before or while it ran.
  bool RunContainer(const json& container, bool init, int* exit_code);
  // Waits up to `d` or until the pod stops; true when it stopped.
  bool WaitOrStopped(absl::Duration d) {
    MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; },
        d == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                      : absl::Now() + d);
    return stopping_;
  }
  bool stopping() {
    MutexLock lock(&mu_);
    return stopping_;
  }
  void Mutate(const std::function<void(json&)>& fn) {
    if (absl::IsNotFound(core_->server_->MutatePod(ns_, name_, fn))) {
      Stop(absl::ZeroDuration(), false);
    }
  }
  // Sets the status entry of container `name` in `list`.
  void SetContainerState(const char* list, const std::string& name,
                         const std::string& image, json state, bool ready) {
    Mutate([&](json& p) {
      json& statuses = p["status"][list];
      if (!statuses.is_array()) statuses = json::array();
      json entry = {{"name", name},      {"image", image},
                    {"imageID", image},  {"ready", ready},
                    {"restartCount", 0}, {"started", state.contains("running")},
                    {"state", state}};
      for (json& s : statuses) {
        if (s.value("name", "") == name) {
          s = entry;
          return;
        }
      }
      statuses.push_back(entry);
    });
  }
  void Event(const std::string& type, const std::string& reason,
             const std::string& message) {
    core_->server_->RecordEvent(ns_, name_, type, reason, message);
  }

  Core* const core_;
  const json pod_;
  std::string ns_, name_, uid_, dir_;
  std::map<std::string, std::string> volume_dirs_;
  absl::Time deadline_ = absl::InfiniteFuture();
  std::thread worker_;
  std::atomic<bool> finished_{false};

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finalize_ ABSL_GUARDED_BY(mu_) = false;
  bool deadline_exceeded_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration grace_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();
  std::vector<Execution*> running_ ABSL_GUARDED_BY(mu_);
};

namespace {

// Appends a container's lines to the double's log and keeps its tail.
class LogSink : public OutputSink {
 public:
  LogSink(FakeApiServer* server, std::string ns, std::string pod,
          std::string container)
      : server_(server),
        ns_(std::move(ns)),
        pod_(std::move(pod)),
        container_(std::move(container)) {}
  void OnLine(v1::LogLine::Stream, absl::string_view line,
              absl::Time time) override {
    server_->AppendLog(ns_, pod_, container_, line, time);
    MutexLock lock(&mu_);
    tail_.emplace_back(line);
    if (tail_.size() > kFallbackLogLines) tail_.pop_front();
  }
  std::vector<std::string> tail() {
    MutexLock lock(&mu_);
    return {tail_.begin(), tail_.end()};
  }

 private:
  FakeApiServer* const server_;
  const std::string ns_, pod_, container_;
  Mutex mu_;
  std::deque<std::string> tail_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void SandboxKubelet::Core::PodRun::Monitor() {
  const std::string path =
      absl::StrCat("/api/v1/namespaces/", ns_, "/pods/", name_);
  while (true) {
    {
      MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(
          [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; },
          absl::Now() + absl::Milliseconds(200));
      if (done_) return;
    }
    absl::StatusOr<json> pod = core_->server_->GetObject(path);
    if (!pod.ok() || Str((*pod)["metadata"], "uid") != uid_) {
      // Removed at once (grace 0) or replaced: kill what runs.
      Stop(absl::ZeroDuration(), false);
      continue;
    }
    if (absl::Now() >= deadline_) {
      int64_t grace = 30;
      if (pod_["spec"].contains("terminationGracePeriodSeconds") &&
          pod_["spec"]["terminationGracePeriodSeconds"].is_number_integer()) {
        grace = pod_["spec"]["terminationGracePeriodSeconds"].get<int64_t>();
      }
      bool first;
      {
        MutexLock lock(&mu_);
        first = !deadline_exceeded_;
        deadline_exceeded_ = true;
      }
      if (first) {
        Event("Warning", "DeadlineExceeded",
              "Pod was active on the node longer than the specified deadline");
        Stop(absl::Seconds(grace), false);
      }
    }
  }
}

bool SandboxKubelet::Core::PodRun::RunContainer(const json& container,
                                                bool init, int* exit_code) {
  const SandboxKubeletOptions& options = core_->options_;
  const char* list = init ? "initContainerStatuses" : "containerStatuses";
  const std::string cname = Str(container, "name");
  const std::string image = Str(container, "image");
  auto waiting = [&](const std::string& reason, const std::string& message) {
    json w = {{"reason", reason}};
    if (!message.empty()) w["message"] = message;
    SetContainerState(list, cname, image, {{"waiting", w}}, false);
  };
  SecretLookup secrets = [this](const std::string& secret)
      -> absl::StatusOr<std::map<std::string, std::string>> {
    absl::StatusOr<json> s = core_->server_->GetObject(
        absl::StrCat("/api/v1/namespaces/", ns_, "/secrets/", secret));
    if (!s.ok()) return s.status();
    std::map<std::string, std::string> data;
    if (s->contains("data") && (*s)["data"].is_object()) {
      for (const auto& [k, v] : (*s)["data"].items()) {
        std::string decoded;
        if (v.is_string() &&
            absl::Base64Unescape(v.get<std::string>(), &decoded)) {
          data[k] = decoded;
        }
      }
    }
    return data;
  };

  // Config (env from secrets): retried as the kubelet does.
  absl::Duration backoff = options.retry_initial;
  std::optional<ContainerConfig> config;
  while (true) {
    ConfigResult r =
        BuildContainerConfig(pod_, container, volume_dirs_, secrets);
    if (r.config.has_value()) {
      config = std::move(r.config);
      break;
    }
    waiting(r.error.reason, r.error.message);
    Event("Warning", "Failed", absl::StrCat("Error: ", r.error.message));
    if (WaitOrStopped(backoff)) return false;
    backoff = std::min(backoff * 2, options.retry_max);
  }

  // The image: ErrImagePull, then ImagePullBackOff while it keeps failing.
  backoff = options.retry_initial;
  std::optional<PreparedImage> prepared;
  for (int attempt = 0;; ++attempt) {
    Event("Normal", "Pulling", absl::StrCat("Pulling image \"", image, "\""));
    absl::StatusOr<PreparedImage> p = options.images->Prepare(image);
    if (p.ok()) {
      prepared = std::move(*p);
      Event("Normal", "Pulled",
            absl::StrCat("Successfully pulled image \"", image, "\""));
      break;
    }
    std::string message = absl::StrCat("Failed to pull image \"", image,
                                       "\": ", p.status().message());
    waiting("ErrImagePull", message);
    Event("Warning", "Failed", message);
    if (WaitOrStopped(std::min(backoff, absl::Milliseconds(500)))) return false;
    waiting("ImagePullBackOff",
            absl::StrCat("Back-off pulling image \"", image, "\""));
    Event("Normal", "BackOff",
          absl::StrCat("Back-off pulling image \"", image, "\""));
    if (WaitOrStopped(backoff)) return false;
    backoff = std::min(backoff * 2, options.retry_max);
  }
  prepared->reference = image;
  if (!config->working_dir.empty()) prepared->workdir = config->working_dir;

  // The working directory, when a volume holds it, exists in the volume.
  for (const ContainerConfig::Bind& b : config->binds) {
    std::string wd = config->working_dir;
    if (wd.size() <= b.target.size() + 1 ||
        !absl::StartsWith(wd, b.target + "/")) {
      continue;
    }
    int fd =
        open(b.host.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    absl::Status made =
        fd < 0 ? absl::InternalError("open volume")
               : MakeDirsBeneath(fd, wd.substr(b.target.size() + 1));
    if (fd >= 0) close(fd);
    if (!made.ok()) {
      waiting("CreateContainerError",
              absl::StrCat("workingDir ", wd, ": ", made.message()));
      WaitOrStopped(absl::InfiniteDuration());
      return false;
    }
  }

  std::string scratch = absl::StrCat(dir_, "/containers/", cname);
  std::error_code ec;
  std::filesystem::create_directories(scratch, ec);
  FixedImage fixed(*prepared);
  LocalSandboxOptions sandbox;
  sandbox.work_root = dir_ + "/work";
  sandbox.hidden_paths = DefaultHiddenPaths("");
  sandbox.cgroups = LocalSandboxOptions::Cgroups::kOff;
  sandbox.init_binary = options.init_binary;
  sandbox.images = &fixed;
  for (const ContainerConfig::Bind& b : config->binds) {
    sandbox.volumes.push_back({b.host, b.target});
  }
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(sandbox);
  if (!executor.ok()) {
    waiting("CreateContainerError", std::string(executor.status().message()));
    WaitOrStopped(absl::InfiniteDuration());
    return false;
  }
  v1::ExecRequest request;
  request.set_run_id(uid_);
  request.set_task(cname);
  request.set_attempt(1);
  for (const std::string& a : config->argv) request.add_argv(a);
  for (const auto& [k, v] : config->env) (*request.mutable_env())[k] = v;
  request.set_image(image);
  request.set_workspace(scratch);
  request.set_network(true);
  request.mutable_limits()->mutable_kill_grace()->set_seconds(
      config->grace_seconds);
  if (deadline_ != absl::InfiniteFuture()) {
    // The monitor enforces the deadline; this is only the sandbox's bound.
    request.mutable_limits()->mutable_timeout()->set_seconds(
        absl::ToInt64Seconds(deadline_ - absl::Now()) + config->grace_seconds +
        60);
  }
  LogSink sink(core_->server_, ns_, name_, cname);
  Event("Normal", "Created", absl::StrCat("Created container ", cname));
  absl::StatusOr<std::unique_ptr<Execution>> execution;
  {
    MutexLock lock(&mu_);
    if (stopping_) return false;
    execution = (*executor)->Start(request, &sink);
    if (execution.ok()) running_.push_back(execution->get());
  }
  if (!execution.ok()) {
    waiting("CreateContainerError", std::string(execution.status().message()));
    WaitOrStopped(absl::InfiniteDuration());
    return false;
  }
  absl::Time started = absl::Now();
  Event("Normal", "Started", absl::StrCat("Started container ", cname));
  SetContainerState(list, cname, image,
                    {{"running", {{"startedAt", Rfc3339(started)}}}}, !init);
  if (!init) {
    Mutate([](json& p) {
      p["status"]["phase"] = "Running";
      p["status"]["conditions"] =
          json::array({{{"type", "PodScheduled"}, {"status", "True"}},
                       {{"type", "Initialized"}, {"status", "True"}},
                       {{"type", "ContainersReady"}, {"status", "True"}},
                       {{"type", "Ready"}, {"status", "True"}}});
    });
  }
  v1::ExecResult result = (*execution)->Wait();
  {
    MutexLock lock(&mu_);
    running_.clear();
  }
  core_->server_->EndLog(ns_, name_, cname);

  int code = result.exit_code();
  std::string reason = "Completed";
  std::string message;
  switch (result.status()) {
    case v1::EXITED:
      reason = code == 0 ? "Completed" : "Error";
      break;
    case v1::OUT_OF_MEMORY:
      code = 137;
      reason = "OOMKilled";
      break;
    case v1::INPUTS_FAILED:
    case v1::SETUP_FAILED:
      // The runtime could not start the process (e.g. no such executable).
      code = 128;
      reason = "StartError";
      message = result.message();
      break;
    default:  // killed: signalled, cancelled, timed out, log limit
      code = result.signal() > 0 ? 128 + result.signal() : 137;
      reason = "Error";
      break;
  }
  if (!config->message_relative_path.empty() && message.empty()) {
    message = TruncateTerminationMessage(
        ReadBeneath(config->message_volume_dir, config->message_relative_path,
                    kMaxTerminationMessageBytes));
  }
  if (message.empty() && code != 0 && config->fallback_to_logs) {
    message = LogTailMessage(sink.tail());
  }
  json terminated = {
      {"exitCode", code},
      {"reason", reason},
      {"startedAt", Rfc3339(started)},
      {"finishedAt", Rfc3339(absl::Now())},
      {"containerID", absl::StrCat("sandbox://", uid_, "/", cname)}};
  if (!message.empty()) terminated["message"] = message;
  SetContainerState(list, cname, image, {{"terminated", terminated}}, false);
  *exit_code = code;
  return !stopping();
}

void SandboxKubelet::Core::PodRun::Run() {
  const json& spec = pod_["spec"];
  absl::Time start = absl::Now();
  if (spec.contains("activeDeadlineSeconds") &&
      spec["activeDeadlineSeconds"].is_number_integer()) {
    deadline_ =
        start + absl::Seconds(spec["activeDeadlineSeconds"].get<int64_t>());
  }
  Mutate([&](json& p) {
    p["spec"]["nodeName"] = core_->options_.node_name;
    p["status"]["phase"] = "Pending";
    p["status"]["hostIP"] = "127.0.0.1";
    p["status"]["podIP"] = "127.0.0.1";
    p["status"]["startTime"] = Rfc3339(start);
    p["status"]["conditions"] =
        json::array({{{"type", "PodScheduled"}, {"status", "True"}}});
  });
  Event("Normal", "Scheduled",
        absl::StrCat("Successfully assigned ", ns_, "/", name_, " to ",
                     core_->options_.node_name));
  std::thread monitor([this] { Monitor(); });

  bool runnable = true;
  std::error_code ec;
  std::filesystem::create_directories(dir_ + "/volumes", ec);
  if (spec.contains("volumes")) {
    for (const json& v : spec["volumes"]) {
      std::string vname = Str(v, "name");
      if (!v.contains("emptyDir") || vname.empty() ||
          vname.find('/') != std::string::npos || vname == "." ||
          vname == "..") {
        Event("Warning", "FailedMount",
              absl::StrCat("MountVolume.SetUp failed for volume \"", vname,
                           "\": only emptyDir volumes are modelled by the "
                           "sandbox kubelet"));
        runnable = false;
        continue;
      }
      std::string host = absl::StrCat(dir_, "/volumes/", vname);
      if (mkdir(host.c_str(), 0777) != 0 || chmod(host.c_str(), 0777) != 0) {
        Event("Warning", "FailedMount",
              absl::StrCat("emptyDir ", vname, ": ", std::strerror(errno)));
        runnable = false;
        continue;
      }
      char real[PATH_MAX];
      volume_dirs_[vname] = realpath(host.c_str(), real) ? real : host;
    }
  }
  bool failed = false;
  bool ran_all = false;
  if (runnable) {
    for (const char* list : {"initContainers", "containers"}) {
      if (!spec.contains(list)) continue;
      for (const json& c : spec[list]) {
        json state = {{"waiting",
                       {{"reason", std::string(list) == "initContainers"
                                       ? "PodInitializing"
                                       : "ContainerCreating"}}}};
        SetContainerState(std::string(list) == "initContainers"
                              ? "initContainerStatuses"
                              : "containerStatuses",
                          Str(c, "name"), Str(c, "image"), state, false);
      }
    }
    ran_all = true;
    const bool has_init = spec.contains("initContainers");
    for (const char* list : {"initContainers", "containers"}) {
      if (!spec.contains(list) || failed || !ran_all) continue;
      const bool init = list == std::string("initContainers");
      if (!init && has_init) {
        Mutate([](json& p) {
          p["status"]["conditions"] =
              json::array({{{"type", "PodScheduled"}, {"status", "True"}},
                           {{"type", "Initialized"}, {"status", "True"}}});
        });
      }
      for (const json& c : spec[list]) {
        int code = 0;
        if (!RunContainer(c, init, &code)) {
          ran_all = false;
          break;
        }
        if (code != 0) {
          failed = true;
          if (init) break;
        }
      }
    }
  } else {
    WaitOrStopped(absl::InfiniteDuration());
  }
  bool exceeded, finalize;
  {
    MutexLock lock(&mu_);
    exceeded = deadline_exceeded_;
    finalize = finalize_;
  }
  if (exceeded) {
    Mutate([](json& p) {
      p["status"]["phase"] = "Failed";
      p["status"]["reason"] = "DeadlineExceeded";
      p["status"]["message"] =
          "Pod was active on the node longer than the specified deadline";
    });
  } else if (ran_all) {
    Mutate([&](json& p) {
      p["status"]["phase"] = failed ? "Failed" : "Succeeded";
      for (json& c : p["status"]["conditions"]) {
        if (c.value("type", "") == "Ready" ||
            c.value("type", "") == "ContainersReady") {
          c["status"] = "False";
          c["reason"] = "PodCompleted";
        }
      }
    });
  }
  {
    MutexLock lock(&mu_);
    done_ = true;
  }
  monitor.join();
  std::filesystem::remove_all(dir_, ec);
  if (finalize) {
    absl::Status s = core_->server_->FinalizePodDeletion(ns_, name_);
    (void)s;  // NotFound: removed meanwhile (a forced delete)
  }
  finished_ = true;
}

void SandboxKubelet::Core::OnCreated(const json& pod) {
  MutexLock lock(&mu_);
  if (stopped_) return;
  ++started_;
  // Pods whose work is over are forgotten (their threads joined).
  pods_.remove_if(
      [](const std::unique_ptr<PodRun>& run) { return run->finished(); });
  pods_.push_back(std::make_unique<PodRun>(this, pod));
  pods_.back()->Launch();
}

void SandboxKubelet::Core::OnDeleting(const json& pod) {
  int64_t grace = 30;
  if (pod["metadata"].contains("deletionGracePeriodSeconds") &&
      pod["metadata"]["deletionGracePeriodSeconds"].is_number_integer()) {
    grace = pod["metadata"]["deletionGracePeriodSeconds"].get<int64_t>();
  }
  MutexLock lock(&mu_);
  if (stopped_) return;
  for (auto& run : pods_) {
    if (run->Is(pod)) run->Stop(absl::Seconds(grace), true);
  }
}

void SandboxKubelet::Core::Stop() {
  std::list<std::unique_ptr<PodRun>> pods;
  {
    MutexLock lock(&mu_);
    stopped_ = true;
    pods.swap(pods_);
  }
  for (auto& run : pods) run->Stop(absl::ZeroDuration(), false);
  pods.clear();  // joins each worker
}

SandboxKubelet::SandboxKubelet(FakeApiServer* server,
                               std::shared_ptr<Core> core)
    : server_(server), core_(std::move(core)) {}

absl::StatusOr<std::unique_ptr<SandboxKubelet>> SandboxKubelet::Start(
    FakeApiServer* server, SandboxKubeletOptions options) {
  if (server == nullptr || options.images == nullptr || options.root.empty() ||
      options.root[0] != '/') {
    return absl::InvalidArgumentError(
        "sandbox kubelet: a server, an ImageAccess and an absolute root are "
        "needed");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.root, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox kubelet: creating ", options.root, ": ", ec.message()));
  }
  char real[PATH_MAX];
  if (realpath(options.root.c_str(), real) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox kubelet: ", options.root, ": ", std::strerror(errno)));
  }
  options.root = real;
  // The sandbox must be able to run at all (kiln-sandbox-init found).
  LocalSandboxOptions probe;
  probe.cgroups = LocalSandboxOptions::Cgroups::kOff;
  probe.init_binary = options.init_binary;
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(probe);
  if (!executor.ok()) return executor.status();
  if (options.init_binary.empty()) {
    options.init_binary = (*executor)->init_binary();
  }
  auto core = std::make_shared<Core>(server, std::move(options));
  FakeApiServer::KubeletHooks hooks;
  std::weak_ptr<Core> weak = core;
  hooks.on_pod_created = [weak](const json& pod) {
    if (std::shared_ptr<Core> c = weak.lock()) c->OnCreated(pod);
  };
  hooks.on_pod_deleting = [weak](const json& pod) {
    if (std::shared_ptr<Core> c = weak.lock()) c->OnDeleting(pod);
  };
  server->SetKubelet(std::move(hooks));
  return std::unique_ptr<SandboxKubelet>(
      new SandboxKubelet(server, std::move(core)));
}

SandboxKubelet::~SandboxKubelet() {
  server_->SetKubelet({});
  core_->Stop();
}

int SandboxKubelet::pods_started() const { return core_->pods_started(); }

}  // namespace testing
}  // namespace kube
}  // namespace kiln
