#include "engine/engine.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/exec/executor_set.h"
#include "engine/kinds/kinds.h"
#include "engine/live_run.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/validate.h"
#include "engine/planned_run.h"
#include "engine/run/task_runner.h"
#include "engine/scheduler/scheduler.h"
#include "engine/store/run_lease.h"
#include "engine/store/run_store.h"
#include "engine/store/store.h"

namespace kiln {
namespace {

// The task named `name` (tasks, then finally), or null.
const v1::Task* FindTask(const v1::Pipeline& pipeline,
                         const std::string& name) {
  for (const auto& t : pipeline.tasks()) {
    if (t.name() == name) return &t;
  }
  for (const auto& t : pipeline.finally()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

class EngineImpl : public Engine {
 public:
  EngineImpl(EngineOptions options, std::unique_ptr<store::Store> store,
             std::string hmac_key)
      : options_(std::move(options)),
        store_(std::move(store)),
        runs_(&store_->runs()),
        hmac_key_(std::move(hmac_key)) {}

  ~EngineImpl() override { Shutdown(absl::Seconds(30)); }

  absl::StatusOr<std::shared_ptr<RunHandle>> Submit(
      RunRequest request) override {
    {
      MutexLock lock(&mu_);
      if (shutdown_) return absl::UnavailableError("engine is shutting down");
    }
    // Validated and planned once: the run executes this plan.
    ExecutorSet executors =
        ExecutorSet(options_.executors, options_.default_executor)
            .ForPipeline(request.pipeline);
    const pipeline::SourceMap* map = request.source_map.get();
    pipeline::ExecCapabilities caps = executors.Capabilities();
    caps.cluster =
        kinds::ClusterCheck(options_.kubeconfig_paths, options_.kube_context);
    // The loader's validation, if it covers this pipeline, leaves only the
    // checks that depend on the executors: the same diagnostics either way.
    auto diags = pipeline::ValidateWithCapabilities(request.pipeline, map, caps,
                                                    request.validation.get());
    if (diags.empty()) {
      diags = executors.Check(request.pipeline, map);
    }
    if (!diags.empty()) return pipeline::DiagnosticsToStatus(diags);
    std::map<std::string, v1::ApprovalStatus> approvals;
    for (const auto& [task, principal] : request.approved_in_advance) {
      const v1::Task* gated = FindTask(request.pipeline, task);
      if (gated == nullptr || !gated->has_approval()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot approve task '", task, "' in advance: the pipeline has ",
            gated == nullptr ? "no such task" : "it without an approval gate"));
      }
      v1::ApprovalStatus& a = approvals[task];
      a.set_decided(true);
      a.set_approved(true);
      a.set_principal(principal);
      a.set_comment("approved in advance");
    }
    absl::StatusOr<PlannedRun> planned =
        PlanRun(std::move(request.pipeline), request.trigger);
    if (!planned.ok()) return planned.status();
    if (!request.source_dir.empty()) {
      std::error_code ec;
      request.source_dir =
          std::filesystem::absolute(request.source_dir, ec).lexically_normal();
    }
    // Recorded and leased under the shared creation lock, so that no
    // resumer mistakes the new run for an abandoned one (run_lease.h).
    std::unique_ptr<store::RunLease> lease;
    std::string id;
    {
      auto creating = store::RunLease::LockCreation(options_.store_dir,
                                                    /*exclusive=*/false);
      if (!creating.ok()) return creating.status();
      auto created =
          runs_->CreateRun(*planned->pipeline, request.trigger,
                           request.source_dir, request.idempotency_key,
                           /*record_tasks=*/false);
      if (!created.ok()) return created.status();
      if (!created->created) return Find(created->run_id);
      id = created->run_id;
      planned->pipeline_digest = created->pipeline_digest;
      auto leased = store::RunLease::Acquire(options_.store_dir, id);
      if (!leased.ok()) return leased.status();
      lease = std::move(*leased);
    }
    return StartRun(id, std::move(planned), std::move(request.trigger),
                    request.source_dir, request.keep_going, {}, {},
                    std::move(approvals), std::move(lease));
  }

  absl::StatusOr<std::shared_ptr<RunHandle>> Resume(
      const std::string& run_id) override {
    // One Resume at a time in this engine: a concurrent one for the same
    // run then finds it live instead of losing the lease race.
    MutexLock resuming(&resume_mu_);
    {
      MutexLock lock(&mu_);
      auto it = live_.find(run_id);
      if (it != live_.end()) return std::shared_ptr<RunHandle>(it->second);
    }
    {
      auto run = runs_->GetRun(run_id);
      if (!run.ok()) return run.status();
      if (IsFinalRun(run->state())) {
        return std::shared_ptr<RunHandle>(
            std::make_shared<RecordedRun>(runs_, run_id));
      }
    }
    // One run, one owner: take the lease first (only a run whose owner is
    // gone can be taken over), then read the state it left.
    std::unique_ptr<store::RunLease> lease;
    {
      auto taking =
          store::RunLease::LockCreation(options_.store_dir, /*exclusive=*/true);
      if (!taking.ok()) return taking.status();
      auto leased = store::RunLease::Acquire(options_.store_dir, run_id);
      if (!leased.ok()) return leased.status();
      lease = std::move(*leased);
    }
    auto run = runs_->GetRun(run_id);
    if (!run.ok()) return run.status();
    if (IsFinalRun(run->state())) {  // its owner finished it meanwhile
      lease->ReleaseFinished();
      return std::shared_ptr<RunHandle>(
          std::make_shared<RecordedRun>(runs_, run_id));
    }
    auto pipeline = runs_->GetPipeline(run_id);
    if (!pipeline.ok()) return pipeline.status();
    auto source = runs_->GetSourceDir(run_id);
    if (!source.ok()) return source.status();
    // The stored trigger shows placeholders for secrets; the run needs them.
    auto trigger = runs_->GetTriggerWithSecrets(run_id);
    if (!trigger.ok()) return trigger.status();
    std::map<std::string, v1::TaskStatus> prior;
    // Attempts the earlier owner started: the next one gets a new number
    // (and so a new log and workspace).
    std::map<std::string, int> attempts_used;
    // Approval gates as recorded: a task keeps waiting from when it began,
    // and a decision made before the restart is acted on.
    std::map<std::string, v1::ApprovalStatus> approvals;
    for (const auto& t : run->tasks()) {
      if (t.has_approval() && !IsFinal(t.state())) {
        approvals[t.name()] = t.approval();
      }
      if (IsFinal(t.state())) {
        prior[t.name()] = t;
      } else if (t.attempts() > 0) {
        attempts_used[t.name()] = static_cast<int>(t.attempts());
      }
    }
    // Re-planned from what the run recorded (pipeline, trigger with secrets):
    // the plan is a pure function of them, so it is the one Submit made.
    absl::StatusOr<PlannedRun> planned =
        PlanRun(std::move(*pipeline), *trigger);
    return StartRun(run_id, std::move(planned), std::move(*trigger), *source,
                    false, std::move(prior), std::move(attempts_used),
                    std::move(approvals), std::move(lease));
  }

  absl::StatusOr<ResumeReport> ResumeUnfinished() override {
    auto ids = runs_->UnfinishedRuns();
    if (!ids.ok()) return ids.status();
    ResumeReport report;
    for (const auto& id : *ids) {
      absl::StatusOr<std::shared_ptr<RunHandle>> run = Resume(id);
      if (run.ok()) {
        report.resumed.push_back(id);
      } else {
        report.not_resumed.emplace_back(id, run.status());
      }
    }
    return report;
  }

  absl::StatusOr<std::shared_ptr<RunHandle>> Retry(
      const std::string& run_id) override {
    auto run = runs_->GetRun(run_id);
    if (!run.ok()) return run.status();
    if (!IsFinalRun(run->state())) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, " has not finished"));
    }
    auto pipeline = runs_->GetPipeline(run_id);
    if (!pipeline.ok()) return pipeline.status();
    auto source = runs_->GetSourceDir(run_id);
    if (!source.ok()) return source.status();
    auto trigger = runs_->GetTriggerWithSecrets(run_id);
    if (!trigger.ok()) return trigger.status();
    RunRequest req;
    req.pipeline = std::move(*pipeline);
    req.trigger = std::move(*trigger);
    req.source_dir = *source;
    return Submit(std::move(req));
  }

  absl::StatusOr<std::shared_ptr<RunHandle>> Find(
      const std::string& run_id) override {
    {
      MutexLock lock(&mu_);
      auto it = live_.find(run_id);
      if (it != live_.end()) return std::shared_ptr<RunHandle>(it->second);
    }
    auto run = runs_->GetRun(run_id);
    if (!run.ok()) return run.status();
    return std::shared_ptr<RunHandle>(
        std::make_shared<RecordedRun>(runs_, run_id));
  }

  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) override {
    return runs_->GetRun(run_id);
  }

  absl::Status Cancel(const std::string& run_id,
                      const std::string& reason) override {
    std::shared_ptr<LiveRun> run;
    {
      MutexLock lock(&mu_);
      auto it = live_.find(run_id);
      if (it != live_.end()) run = it->second;
    }
    if (run == nullptr) {
      auto r = runs_->GetRun(run_id);
      if (!r.ok()) return r.status();
      return absl::FailedPreconditionError(
          IsFinalRun(r->state())
              ? absl::StrCat("run ", run_id, " has already finished")
              : absl::StrCat("run ", run_id,
                             " is not executing in this engine"));
    }
    run->Cancel(reason);
    return absl::OkStatus();
  }

  absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& run_id, const std::string& task, bool approve,
      const std::string& principal, const std::string& comment) override {
    if (comment.size() > pipeline::kMaxApprovalMessageBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the comment is longer than ",
                       pipeline::kMaxApprovalMessageBytes, " bytes"));
    }
    auto pipeline = runs_->GetPipeline(run_id);
    if (!pipeline.ok()) return pipeline.status();
    const v1::Task* gated = FindTask(*pipeline, task);
    if (gated == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("run ", run_id, " has no task '", task, "'"));
    }
    if (!gated->has_approval()) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", task, " has no approval gate"));
    }
    const auto& approvers = gated->approval().approvers();
    if (!approvers.empty() && std::find(approvers.begin(), approvers.end(),
                                        principal) == approvers.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("'", principal, "' may not decide task ", task,
                       " (approvers: ", absl::StrJoin(approvers, ", "), ")"));
    }
    std::shared_ptr<LiveRun> run;
    {
      MutexLock lock(&mu_);
      auto it = live_.find(run_id);
      if (it != live_.end()) run = it->second;
    }
    if (run == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id,
                       " is not executing in this engine (finished, or "
                       "owned by another process): task ",
                       task, " is not waiting here"));
    }
    ApprovalDecision decision;
    decision.approve = approve;
    decision.principal = principal;
    decision.comment = comment;
    return run->DecideApproval(task, decision);
  }

  void Shutdown(absl::Duration grace) override {
    std::vector<std::shared_ptr<LiveRun>> runs;
    {
      MutexLock lock(&mu_);
      shutdown_ = true;
      for (auto& [id, r] : live_) runs.push_back(r);
    }
    // Checkpoint, not cancel: running tasks get `grace` to finish, nothing
    // new starts, and the runs stay unfinished in the store so that the
    // next engine on this store resumes them (ResumeUnfinished).
    for (auto& r : runs) r->Drain(grace);
    // WaitSummary: the end of the run, without building or copying its
    // 10,000 task statuses.
    for (auto& r : runs) (void)r->WaitSummary();
    MutexLock lock(&mu_);
    live_.clear();
  }

  store::Store& store() const override { return *store_; }

  LiveRunDeps Deps() {
    return LiveRunDeps{&options_, runs_, &store_->cache(), &store_->artifacts(),
                       hmac_key_};
  }

 private:
  absl::StatusOr<std::shared_ptr<RunHandle>> StartRun(
      const std::string& id, absl::StatusOr<PlannedRun> planned,
      v1::Trigger trigger, const std::string& source_dir, bool keep_going,
      std::map<std::string, v1::TaskStatus> prior,
      std::map<std::string, int> attempts_used,
      std::map<std::string, v1::ApprovalStatus> approvals,
      std::unique_ptr<store::RunLease> lease) {
    auto run = std::make_shared<LiveRun>(
        Deps(), id, std::move(planned), std::move(trigger), source_dir,
        keep_going, std::move(prior), std::move(attempts_used),
        std::move(approvals), std::move(lease));
    {
      MutexLock lock(&mu_);
      if (shutdown_) return absl::UnavailableError("engine is shutting down");
      // Reap finished runs.
      for (auto it = live_.begin(); it != live_.end();) {
        it = it->second->done() ? live_.erase(it) : std::next(it);
      }
      live_[id] = run;
    }
    run->Start();
    return std::shared_ptr<RunHandle>(run);
  }

  const EngineOptions options_;
  // Every part of the store, opened once.
  const std::unique_ptr<store::Store> store_;
  store::RunStore* const runs_;  // store_->runs()
  const std::string hmac_key_;

  Mutex resume_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<LiveRun>> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(EngineOptions options) {
  if (options.store_dir.empty()) {
    return absl::InvalidArgumentError("EngineOptions.store_dir is required");
  }
  // The single `executor` joins `executors` (once) and is the default.
  if (options.executor != nullptr) {
    bool listed = false;
    for (const auto& e : options.executors) listed |= e == options.executor;
    if (!listed)
      options.executors.insert(options.executors.begin(), options.executor);
    if (options.default_executor.empty()) {
      options.default_executor = options.executor->Name();
    }
  }
  ExecutorSet executors(options.executors, options.default_executor);
  if (absl::Status s = executors.Validate(); !s.ok()) return s;
  options.default_executor = executors.Default()->Name();
  auto store = store::Store::Open(options.store_dir);
  if (!store.ok()) return store.status();
  options.store_dir = (*store)->dir();
  auto key = (*store)->HmacKey();
  if (!key.ok()) return key.status();
  (*store)->SweepDeadTemps();
  if (options.image_store == nullptr) {
    image::ImageStoreOptions images;
    images.dir = (*store)->dir() + "/images";
    images.sources = options.image_sources;
    auto opened = image::ImageStore::Open(std::move(images));
    if (!opened.ok()) return opened.status();
    options.image_store = std::move(*opened);
  }
  return std::unique_ptr<Engine>(
      new EngineImpl(std::move(options), std::move(*store), std::move(*key)));
}

}  // namespace kiln
