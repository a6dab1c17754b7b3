#include "executors/kubernetes/pod_executor.h"

#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/mutex.h"
#include "executors/kubernetes/log_dedup.h"
#include "executors/kubernetes/pod_manifest.h"
#include "executors/kubernetes/pod_names.h"
#include "executors/kubernetes/pod_result.h"
#include "kube/client.h"
#include "kube/pod_shape.h"

namespace kiln {
namespace {

using json = nlohmann::json;
using kubernetes::PodView;

constexpr char kArchLabel[] = "kubernetes.io/arch";

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  out.set_seconds(absl::ToInt64Seconds(d));
  out.set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(d - absl::Seconds(out.seconds()))));
  return out;
}

std::string Annotation(const json& pod, const char* key) {
  const json* m = nullptr;
  if (pod.contains("metadata") && pod["metadata"].contains("annotations"))
    m = &pod["metadata"]["annotations"];
  if (m == nullptr || !m->is_object() || !m->contains(key) ||
      !(*m)[key].is_string()) {
    return "";
  }
  return (*m)[key].get<std::string>();
}

constexpr char kAnnotationCollected[] = "kiln.dev/collected";

bool IsTerminating(const json& pod) {
  return pod.contains("metadata") &&
         pod["metadata"].contains("deletionTimestamp") &&
         !pod["metadata"]["deletionTimestamp"].is_null();
}

// Whether `pod` is kiln's pod for exactly this request (same run, task and
// fingerprint), so that adopting it is adopting this attempt's work.
bool IsPodFor(const json& pod, const v1::ExecRequest& request,
              const std::string& fingerprint) {
  return Annotation(pod, kubernetes::kAnnotationRunId) == request.run_id() &&
         Annotation(pod, kubernetes::kAnnotationTaskName) == request.task() &&
         Annotation(pod, kubernetes::kAnnotationRequest) == fingerprint;
}

class PodExecutor;

// One attempt's pod: a driver thread (creates or adopts the pod, watches
// it, enforces the pending bound and cancellation, collects the result), a
// watch thread and a log thread.
class PodExecution : public Execution {
 public:
  PodExecution(PodExecutor* executor, v1::ExecRequest request, OutputSink* sink,
               ArchiveAccess* archives, json pod, std::string pod_name,
               absl::Duration kill_grace);
  ~PodExecution() override;

  void Launch();
  v1::ExecResult Wait() override;
  void Cancel() override;

 private:
  void Drive();
  void WatchPod();
  void FollowLog(bool follow);
  // Ends the attempt from the pod's view (adopts outputs).
  void Collect(const PodView& view);
  void DeletePod(std::optional<int64_t> grace);
  std::string PendingMessage(const PodView& view);
  // A pod of an earlier attempt of this task that ran this very request
  // and whose result no engine collected (its engine was killed): the
  // attempt adopts it instead of starting the work again. Deletes the
  // task's other uncollected earlier pods (orphans).
  std::optional<std::string> FindEarlierAttempt();

  PodExecutor* const executor_;
  const v1::ExecRequest request_;
  OutputSink* const sink_;
  ArchiveAccess* const archives_;
  const json manifest_;
  std::string name_;  // set before the threads start (adoption)
  const absl::Duration kill_grace_;
  const absl::Time started_ = absl::Now();

  kube::CancelFlag watch_cancel_;
  kube::CancelFlag log_cancel_;
  std::thread driver_, watcher_, logger_;

  Mutex mu_;
  std::optional<json> pod_ ABSL_GUARDED_BY(mu_);
  bool deleted_ ABSL_GUARDED_BY(mu_) = false;
  std::string watch_error_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool log_limit_ ABSL_GUARDED_BY(mu_) = false;
  bool log_done_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped by every change the driver waits for.
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  v1::ExecResult result_;  // written by the driver only
};

class PodExecutor : public Executor {
 public:
  explicit PodExecutor(PodExecutorOptions options)
      : options_(std::move(options)) {}

  std::string Name() const override { return options_.name; }
  std::string Platform() const override {
    auto it = options_.defaults.node_selector().find(kArchLabel);
    std::string arch = it == options_.defaults.node_selector().end()
                           ? std::string("any")
                           : it->second;
    // The agent image is pinned by digest: "repo@sha256:...".
    std::string digest =
        options_.agent_image.substr(options_.agent_image.rfind('@') + 1);
    return absl::StrCat("linux/", arch, "/kubernetes/v1/agent=", digest);
  }
  ExecutorCapabilities Capabilities() const override {
    ExecutorCapabilities c;
    c.images = true;
    return c;
  }

  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override {
    return StartStaged(request, sink, HostWorkspaceOptions());
  }

  absl::StatusOr<std::unique_ptr<Execution>> StartStaged(
      const v1::ExecRequest& request, OutputSink* sink,
      const HostWorkspaceOptions& host) override;

  const PodExecutorOptions& options() const { return options_; }
  kube::Client& client() const { return *options_.client; }

  // Records a finished pod kept for inspection; returns the names of the
  // kept pods to delete now (beyond keep_finished_pods).
  std::vector<std::string> KeepFinished(const std::string& name) {
    MutexLock lock(&mu_);
    kept_.push_back(name);
    std::vector<std::string> drop;
    while (kept_.size() > static_cast<size_t>(options_.keep_finished_pods)) {
      drop.push_back(kept_.front());
      kept_.pop_front();
    }
    return drop;
  }

 private:
  absl::Status EnsureTokenSecret();

  const PodExecutorOptions options_;
  Mutex mu_;
  bool secret_ready_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::string> kept_ ABSL_GUARDED_BY(mu_);
};

// An attempt that ended before any pod existed (an input without an
// archive): its result is known at Start().
class KnownResult : public Execution {
 public:
  explicit KnownResult(v1::ExecResult r) : result_(std::move(r)) {}
  v1::ExecResult Wait() override { return result_; }
  void Cancel() override {}

 private:
  v1::ExecResult result_;
};

absl::Status PodExecutor::EnsureTokenSecret() {
  MutexLock lock(&mu_);
  if (secret_ready_) return absl::OkStatus();
  const std::string& ns = options_.namespace_name;
  std::string name = kubernetes::AgentSecretName(options_.name);
  json secret = kubernetes::BuildTokenSecret(name, ns, options_.agent_token);
  absl::StatusOr<json> created = client().Create(kube::SecretsPath(ns), secret);
  if (!created.ok()) {
    if (kube::ApiReason(created.status()) != "AlreadyExists") {
      return created.status();
    }
    absl::StatusOr<json> existing = client().Get(kube::SecretPath(ns, name));
    if (!existing.ok()) return existing.status();
    json labels = (*existing)["metadata"].value("labels", json::object());
    if (labels.value(kubernetes::kLabelManagedBy, "") != "kiln") {
      return absl::FailedPreconditionError(
          absl::StrCat("secret ", ns, "/", name,
                       " exists and is not kiln's (no label "
                       "app.kubernetes.io/managed-by=kiln)"));
    }
    // Ours (an earlier engine's): carry this engine's token.
    secret["metadata"]["resourceVersion"] =
        (*existing)["metadata"].value("resourceVersion", "");
    absl::StatusOr<json> replaced =
        client().Replace(kube::SecretPath(ns, name), secret);
    if (!replaced.ok()) return replaced.status();
  }
  secret_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Execution>> PodExecutor::StartStaged(
    const v1::ExecRequest& request, OutputSink* sink,
    const HostWorkspaceOptions& host) {
  if (request.image().empty() || request.image() == "host") {
    return absl::InvalidArgumentError(absl::StrCat(
        Name(), " runs tasks in images: task '", request.task(),
        "' names none (the host's root filesystem cannot run in a pod)"));
  }
  if (!request.workspace().empty() || !request.rootfs().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(), " has no host workspace or rootfs mode"));
  }
  if (request.argv_size() == 0) {
    return absl::InvalidArgumentError("empty argv");
  }
  if (!request.results_dir().empty()) {
    // The in-pod agent does not collect $KILN_RESULTS yet: refused, never
    // run without them.
    return absl::InvalidArgumentError(absl::StrCat(
        Name(), ": task '", request.task(),
        "' declares results ($KILN_RESULTS), which pods do not support yet; "
        "run it on a local executor"));
  }
  bool moves_artifacts = request.inputs_size() > 0 ||
                         request.outputs_size() > 0 ||
                         !request.report().empty();
  if (moves_artifacts && host.archives == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(),
                     ": a request with inputs/outputs needs an ArchiveAccess "
                     "(HostWorkspaceOptions.archives)"));
  }
  v1::PodShape shape = MergePodShapes(options_.defaults, request.pod());
  if (absl::Status s = ValidatePodShape(shape); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task '", request.task(), "': pod: ", s.message()));
  }

  // The archive of each input; one the engine does not know is the
  // attempt's INPUTS_FAILED (nothing runs).
  std::vector<std::string> archives;
  for (const v1::ExecInput& in : request.inputs()) {
    absl::StatusOr<std::string> archive = host.archives->ArchiveOf(in.digest());
    if (!archive.ok()) {
      v1::ExecResult r;
      r.set_status(v1::INPUTS_FAILED);
      r.set_message(absl::StrCat("input '", in.artifact(),
                                 "': ", archive.status().message()));
      return std::unique_ptr<Execution>(new KnownResult(std::move(r)));
    }
    archives.push_back(*archive);
  }
  if (absl::Status s = EnsureTokenSecret(); !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat(Name(), ": the agent token secret: ", s.message()));
  }

  absl::Duration timeout = request.limits().has_timeout()
                               ? FromProto(request.limits().timeout())
                               : options_.default_timeout;
  absl::Duration grace = request.limits().has_kill_grace()
                             ? FromProto(request.limits().kill_grace())
                             : options_.default_kill_grace;
  kubernetes::PodManifestParams params;
  params.name =
      kubernetes::PodName(request.run_id(), request.task(), request.attempt());
  params.namespace_name = options_.namespace_name;
  params.agent_image = options_.agent_image;
  params.agent_server = options_.agent_server;
  params.agent_ca_pem = options_.agent_ca_pem;
  params.token_secret = kubernetes::AgentSecretName(options_.name);
  params.instance = options_.instance;
  params.agent_spec = kubernetes::BuildAgentSpec(request, archives, timeout);
  params.shape = shape;
  params.timeout = timeout;
  json manifest = kubernetes::BuildPodManifest(request, params);
  auto execution =
      std::make_unique<PodExecution>(this, request, sink, host.archives,
                                     std::move(manifest), params.name, grace);
  execution->Launch();
  return std::unique_ptr<Execution>(std::move(execution));
}

PodExecution::PodExecution(PodExecutor* executor, v1::ExecRequest request,
                           OutputSink* sink, ArchiveAccess* archives, json pod,
                           std::string pod_name, absl::Duration kill_grace)
    : executor_(executor),
      request_(std::move(request)),
      sink_(sink),
      archives_(archives),
      manifest_(std::move(pod)),
      name_(std::move(pod_name)),
      kill_grace_(kill_grace) {}

PodExecution::~PodExecution() {
  Cancel();
  if (driver_.joinable()) driver_.join();
}

void PodExecution::Launch() {
  driver_ = std::thread([this] { Drive(); });
}

v1::ExecResult PodExecution::Wait() {
  if (driver_.joinable()) driver_.join();
  return result_;
}

void PodExecution::Cancel() {
  MutexLock lock(&mu_);
  ++version_;
  cancel_requested_ = true;
}

void PodExecution::WatchPod() {
  const std::string& ns = executor_->options().namespace_name;
  kube::WatchOptions options;
  options.field_selector = absl::StrCat("metadata.name=", name_);
  absl::Status s = executor_->client().Watch(
      kube::PodsPath(ns), options,
      [&](const kube::WatchEvent& event) {
        MutexLock lock(&mu_);
        ++version_;
        if (event.type == "DELETED") {
          deleted_ = true;
          pod_ = event.object;
        } else if (event.type == "ADDED" || event.type == "MODIFIED") {
          pod_ = event.object;
        }
        return !deleted_;
      },
      &watch_cancel_);
  MutexLock lock(&mu_);
  ++version_;
  if (!s.ok()) watch_error_ = std::string(s.message());
}

void PodExecution::FollowLog(bool follow) {
  const std::string& ns = executor_->options().namespace_name;
  kubernetes::LogDeduplicator dedup;
  uint64_t max_bytes = request_.limits().max_log_bytes();
  int failures = 0;
  while (!log_cancel_.cancelled()) {
    kube::LogOptions options;
    options.container = kubernetes::kTaskContainer;
    options.follow = follow;
    options.timestamps = true;
    options.since_time = dedup.ResumeTime();
    dedup.BeginStream();
    bool progressed = false;
    absl::Status s = executor_->client().StreamLog(
        ns, name_, options,
        [&](absl::string_view raw) {
          absl::StatusOr<kubernetes::TimestampedLine> line =
              kubernetes::ParseTimestampedLine(raw);
          if (!line.ok()) return true;  // not a log line of the container
          if (!dedup.Accept(line->time)) return true;
          progressed = true;
          bool over = false;
          {
            MutexLock lock(&mu_);
            log_bytes_ += line->text.size() + 1;
            if (max_bytes > 0 && log_bytes_ > max_bytes) {
              log_limit_ = true;
              ++version_;
              over = true;
            }
          }
          if (over) return false;
          sink_->OnLine(v1::LogLine::STDOUT, line->text, line->time);
          return true;
        },
        &log_cancel_);
    if (s.ok() || absl::IsNotFound(s)) break;
    {
      MutexLock lock(&mu_);
      if (log_limit_) break;
    }
    // A dropped stream: resume from the last second delivered.
    failures = progressed ? 0 : failures + 1;
    if (failures > 20) break;
    if (log_cancel_.WaitFor(absl::Milliseconds(100 * std::min(failures, 10))))
      break;
  }
  MutexLock lock(&mu_);
  log_done_ = true;
  ++version_;
}

void PodExecution::DeletePod(std::optional<int64_t> grace) {
  kube::DeleteOptions options;
  options.grace_period_seconds = grace;
  absl::Status s = executor_->client().Delete(
      kube::PodPath(executor_->options().namespace_name, name_), options);
  if (!s.ok() && !absl::IsNotFound(s)) {
    result_.add_warnings(
        absl::StrCat("deleting pod ", name_, ": ", s.message()));
  }
}

std::string PodExecution::PendingMessage(const PodView& view) {
  kube::ListOptions options;
  options.field_selector = absl::StrCat("involvedObject.name=", name_);
  absl::StatusOr<json> events = executor_->client().List(
      kube::EventsPath(executor_->options().namespace_name), options);
  std::string message;
  if (events.ok()) message = kubernetes::LatestEventMessage(*events);
  if (message.empty()) message = view.pending_reason;
  if (message.empty()) message = "no event explains why";
  return message;
}

std::optional<std::string> PodExecution::FindEarlierAttempt() {
  const std::string& ns = executor_->options().namespace_name;
  kube::ListOptions options;
  std::map<std::string, std::string> labels = kubernetes::PodLabels(
      request_.run_id(), request_.task(), request_.attempt());
  options.label_selector = absl::StrCat(
      kubernetes::kLabelRun, "=", labels[kubernetes::kLabelRun], ",",
      kubernetes::kLabelTask, "=", labels[kubernetes::kLabelTask], ",",
      kubernetes::kLabelManagedBy, "=kiln");
  absl::StatusOr<json> pods =
      executor_->client().List(kube::PodsPath(ns), options);
  if (!pods.ok() || !pods->contains("items")) return std::nullopt;
  const std::string fingerprint = kubernetes::RequestFingerprint(request_);
  std::optional<std::string> best;
  uint32_t best_attempt = 0;
  std::vector<std::string> orphans;
  for (const json& pod : (*pods)["items"]) {
    std::string name = pod["metadata"].value("name", "");
    uint32_t attempt = 0;
    std::string attempt_label = pod["metadata"]
                                    .value("labels", json::object())
                                    .value(kubernetes::kLabelAttempt, "");
    if (name.empty() || name == name_ ||
        !absl::SimpleAtoi(attempt_label, &attempt) ||
        attempt >= request_.attempt() ||
        Annotation(pod, kAnnotationCollected) == "true" ||
        Annotation(pod, kubernetes::kAnnotationTaskName) != request_.task() ||
        IsTerminating(pod)) {
      continue;
    }
    if (IsPodFor(pod, request_, fingerprint) &&
        (!best.has_value() || attempt > best_attempt)) {
      if (best.has_value()) orphans.push_back(*best);
      best = name;
      best_attempt = attempt;
    } else {
      orphans.push_back(name);
    }
  }
  for (const std::string& orphan : orphans) {
    kube::DeleteOptions del;
    del.grace_period_seconds = 0;
    absl::Status s = executor_->client().Delete(kube::PodPath(ns, orphan), del);
    if (!s.ok() && !absl::IsNotFound(s)) {
      result_.add_warnings(
          absl::StrCat("deleting orphaned pod ", orphan, ": ", s.message()));
    }
  }
  return best;
}

void PodExecution::Drive() {
  const PodExecutorOptions& options = executor_->options();
  const std::string& ns = options.namespace_name;
  auto finish = [&](v1::ExecStatus status, std::string message) {
    result_.set_status(status);
    result_.set_message(std::move(message));
  };

  if (request_.attempt() > 1) {
    if (std::optional<std::string> earlier = FindEarlierAttempt()) {
      name_ = *earlier;
      result_.add_warnings(absl::StrCat(
          "kiln: re-attached to pod ", name_,
          " of an earlier attempt that ran this request (its engine stopped)"));
    }
  }

  // Create the pod, or adopt the one this attempt (or an engine that ran
  // this very request before it was killed) already made.
  const bool adopted_earlier =
      name_ != manifest_["metadata"]["name"].get<std::string>();
  absl::StatusOr<json> created = absl::AlreadyExistsError("not created");
  if (!adopted_earlier) {
    created = executor_->client().Create(kube::PodsPath(ns), manifest_);
  }
  if (!adopted_earlier && !created.ok()) {
    if (kube::ApiReason(created.status()) != "AlreadyExists") {
      finish(v1::INFRA_FAILED, absl::StrCat("creating pod ", name_, ": ",
                                            created.status().message()));
      return;
    }
    absl::StatusOr<json> existing =
        executor_->client().Get(kube::PodPath(ns, name_));
    if (!existing.ok() ||
        !IsPodFor(*existing, request_,
                  kubernetes::RequestFingerprint(request_)) ||
        IsTerminating(*existing)) {
      finish(v1::INFRA_FAILED,
             absl::StrCat("pod ", name_,
                          " already exists and is not this attempt's (or is "
                          "being deleted)"));
      return;
    }
  }

  watcher_ = std::thread([this] { WatchPod(); });
  bool log_started = false;
  bool deleting = false;
  absl::Time cancel_at = absl::InfiniteFuture();
  bool forced = false;
  std::optional<PodView> final_view;
  bool cancelled = false;
  bool log_limit = false;
  bool pending_timeout = false;
  std::string pending_message;
  bool deleted_by_other = false;
  std::string watch_error;
  bool ever_ran = false;

  while (true) {
    std::optional<json> pod;
    bool deleted;
    {
      MutexLock lock(&mu_);
      const int64_t seen = version_;
      mu_.AwaitWithDeadline(
          [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return version_ != seen; },
          absl::Now() + absl::Milliseconds(200));
      pod = pod_;
      deleted = deleted_;
      cancelled = cancel_requested_;
      log_limit = log_limit_;
      watch_error = watch_error_;
    }
    absl::Time now = absl::Now();
    std::optional<PodView> view;
    if (pod.has_value()) view = kubernetes::ViewPod(*pod);
    if (view && view->stage != PodView::Stage::kPending) ever_ran = true;
    if (view && view->stage == PodView::Stage::kFinished) {
      final_view = view;
      break;
    }
    if (deleted) {
      if (!deleting) deleted_by_other = true;
      break;
    }
    if (!watch_error.empty()) break;
    if ((cancelled || log_limit) && !deleting) {
      deleting = true;
      cancel_at = now;
      DeletePod(absl::ToInt64Seconds(kill_grace_) > 0
                    ? absl::ToInt64Seconds(kill_grace_)
                    : 1);
    }
    if (deleting && !forced &&
        now > cancel_at + kill_grace_ + absl::Seconds(5)) {
      forced = true;
      DeletePod(0);
    }
    if (deleting && forced && now > cancel_at + kill_grace_ + absl::Seconds(60))
      break;  // the API server does not finish the delete: give up waiting
    if (view && view->stage == PodView::Stage::kRunning && !log_started) {
      log_started = true;
      logger_ = std::thread([this] { FollowLog(true); });
    }
    if (!deleting && !ever_ran && now > started_ + options.pending_timeout) {
      pending_timeout = true;
      pending_message = PendingMessage(view ? *view : PodView());
      DeletePod(0);
      break;
    }
  }
  watch_cancel_.Cancel();
  if (watcher_.joinable()) watcher_.join();

  // The log: a task container that ran before we saw it running still has
  // its whole log to read.
  bool task_ran = final_view &&
                  (final_view->agent.has_value() || final_view->task_started ||
                   final_view->result.status() == v1::OUT_OF_MEMORY);
  if (!log_started && task_ran) {
    log_started = true;
    logger_ = std::thread([this] { FollowLog(false); });
  }
  if (log_started) {
    if (deleting || deleted_by_other || !watch_error.empty()) {
      log_cancel_.Cancel();
    } else {
      // The container has ended: its stream ends by itself; bound the wait.
      MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(
          [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return log_done_; },
          absl::Now() + absl::Seconds(30));
    }
    log_cancel_.Cancel();
    logger_.join();
  }
  {
    MutexLock lock(&mu_);
    log_limit = log_limit_;
    result_.set_log_bytes(log_bytes_);
  }

  if (log_limit) {
    finish(v1::LOG_LIMIT,
           absl::StrCat("output exceeded ", request_.limits().max_log_bytes(),
                        " bytes"));
  } else if (final_view && !(cancelled && deleting)) {
    Collect(*final_view);
  } else if (cancelled) {
    finish(v1::CANCELLED, "cancelled");
  } else if (pending_timeout) {
    finish(v1::INFRA_FAILED,
           absl::StrCat("pod ", name_, " did not start within ",
                        absl::FormatDuration(options.pending_timeout), ": ",
                        pending_message));
  } else if (deleted_by_other) {
    finish(v1::INFRA_FAILED,
           absl::StrCat("pod ", name_, " was deleted by someone else"));
  } else if (!watch_error.empty()) {
    finish(v1::INFRA_FAILED,
           absl::StrCat("watching pod ", name_, ": ", watch_error));
  } else {
    finish(v1::INFRA_FAILED, absl::StrCat("pod ", name_, " was not finished"));
  }
  result_.set_signal(result_.signal());
  *result_.mutable_wall_time() = ToProto(absl::Now() - started_);

  if (!deleting && !deleted_by_other && !pending_timeout) {
    if (options.keep_finished_pods > 0) {
      // Marked, so that no later attempt adopts a pod whose result is taken.
      absl::StatusOr<json> marked = executor_->client().Patch(
          kube::PodPath(ns, name_),
          json{{"metadata",
                {{"annotations", {{kAnnotationCollected, "true"}}}}}},
          kube::PatchType::kMerge);
      if (!marked.ok()) {
        result_.add_warnings(absl::StrCat(
            "marking pod ", name_, " collected: ", marked.status().message()));
      }
      for (const std::string& drop : executor_->KeepFinished(name_)) {
        absl::Status s = executor_->client().Delete(kube::PodPath(ns, drop));
        if (!s.ok() && !absl::IsNotFound(s)) {
          result_.add_warnings(
              absl::StrCat("deleting pod ", drop, ": ", s.message()));
        }
      }
    } else {
      DeletePod(std::nullopt);
    }
  }
}

void PodExecution::Collect(const PodView& view) {
  result_.set_status(view.result.status());
  result_.set_exit_code(view.result.exit_code());
  result_.set_signal(view.result.signal());
  result_.set_message(view.result.message());
  for (const auto& w : view.result.warnings()) result_.add_warnings(w);
  if (view.result.status() != v1::EXITED || view.result.exit_code() != 0 ||
      !view.agent.has_value()) {
    return;
  }
  // Every declared output, verified by the engine before it is taken.
  std::map<std::string, std::string> outputs;
  for (const v1::ExecOutput& out : request_.outputs()) {
    auto it = view.agent->outputs.find(out.artifact());
    absl::Status s;
    if (it == view.agent->outputs.end()) {
      s = absl::NotFoundError("the agent reported no archive for it");
    } else {
      s = archives_->AdoptArchive(it->second.tree, it->second.archive);
    }
    if (!s.ok()) {
      result_.set_status(v1::OUTPUTS_FAILED);
      result_.set_message(
          absl::StrCat("output '", out.artifact(), "': ", s.message()));
      return;
    }
    outputs[out.artifact()] = it->second.tree;
  }
  for (const auto& [name, tree] : outputs)
    (*result_.mutable_outputs())[name] = tree;
  if (!request_.report().empty() && view.agent->report.has_value()) {
    absl::Status s = archives_->AdoptArchive(view.agent->report->tree,
                                             view.agent->report->archive);
    if (s.ok()) {
      result_.set_report_digest(view.agent->report->tree);
    } else {
      result_.add_warnings(absl::StrCat("report: ", s.message()));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> CreatePodExecutor(
    PodExecutorOptions options) {
  if (options.client == nullptr) {
    return absl::InvalidArgumentError("pod executor: no Kubernetes client");
  }
  if (options.namespace_name.empty()) {
    return absl::InvalidArgumentError("pod executor: no namespace");
  }
  if (!absl::StrContains(options.agent_image, "@sha256:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod executor: the agent image must be pinned by digest "
                     "(repo@sha256:...), got '",
                     options.agent_image, "'"));
  }
  if (options.agent_server.empty() || options.agent_token.empty()) {
    return absl::InvalidArgumentError(
        "pod executor: the agents' blob server address and token are needed");
  }
  if (!options.instance.empty() && !ValidateLabelValue(options.instance).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("pod executor: instance '",
                                                   options.instance,
                                                   "' is not a label value"));
  }
  if (options.pending_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "pod executor: pending_timeout must be positive");
  }
  if (options.keep_finished_pods < 0) {
    return absl::InvalidArgumentError(
        "pod executor: keep_finished_pods must not be negative");
  }
  if (absl::Status s = ValidatePodShape(options.defaults); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod executor defaults: ", s.message()));
  }
  return std::unique_ptr<Executor>(new PodExecutor(std::move(options)));
}

}  // namespace kiln
