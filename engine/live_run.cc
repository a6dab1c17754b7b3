#include "engine/live_run.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/beneath.h"
#include "engine/exec/executor_set.h"
#include "engine/kinds/kinds.h"
#include "engine/run/task_runner.h"
#include "engine/run_notifications.h"
#include "engine/run_replay.h"

namespace kiln {

bool IsFinalRun(v1::RunState s) {
  return s == v1::RUN_SUCCEEDED || s == v1::RUN_FAILED ||
         s == v1::RUN_CANCELLED || s == v1::RUN_TIMED_OUT;
}

LiveRun::LiveRun(LiveRunDeps deps, std::string id,
                 absl::StatusOr<PlannedRun> planned, v1::Trigger trigger,
                 std::string source_dir, bool keep_going,
                 std::map<std::string, v1::TaskStatus> prior,
                 std::map<std::string, int> attempts_used,
                 std::map<std::string, v1::ApprovalStatus> approvals,
                 std::unique_ptr<store::RunLease> lease)
    : deps_(std::move(deps)),
      id_(std::move(id)),
      planned_(std::move(planned)),
      trigger_(std::move(trigger)),
      source_dir_(std::move(source_dir)),
      keep_going_(keep_going),
      prior_(std::move(prior)),
      attempts_used_(std::move(attempts_used)),
      approvals_(std::move(approvals)),
      lease_(std::move(lease)) {
  MutexLock lock(&mu_);
  for (const auto& [name, status] : prior_) task_states_[name] = status.state();
}

LiveRun::~LiveRun() {
  if (thread_.joinable()) thread_.join();
  if (pump_.joinable()) pump_.join();
}

void LiveRun::Start() {
  auto last = deps_.runs->LastSequence(id_);
  {
    MutexLock lock(&mu_);
    appended_ = last.ok() ? *last : 0;
  }
  pump_ = PooledThread([this] { Pump(); });
  thread_ = PooledThread([this] { Execute(); });
}

int LiveRun::Subscribe(uint64_t after_seq, EventCallback callback) {
  MutexLock lock(&sub_mu_);
  // Replay what is recorded; the pump delivers later events (it takes
  // sub_mu_ too, so nothing is missed or delivered twice).
  uint64_t last = after_seq;
  while (true) {
    auto events = deps_.runs->ReadEvents(id_, last, 1000);
    if (!events.ok() || events->empty()) break;
    for (const auto& e : *events) callback(e);
    last = events->back().sequence();
  }
  int id = ++next_sub_;
  subs_[id] = Sub{last, std::move(callback)};
  return id;
}

void LiveRun::Unsubscribe(int subscription) {
  MutexLock lock(&sub_mu_);
  subs_.erase(subscription);
}

v1::Run LiveRun::Wait() { return *WaitShared(); }

std::shared_ptr<const v1::Run> LiveRun::WaitShared() {
  MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; });
  return FinalLocked();
}

std::shared_ptr<const v1::Run> LiveRun::WaitSummary() {
  MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; });
  return summary_;
}

std::shared_ptr<const v1::Run> LiveRun::FinalLocked() {
  if (final_ == nullptr) {
    // A replay's statuses, made from its source now (a failed read leaves
    // the run without them: tasks_omitted).
    absl::Status read;
    std::shared_ptr<v1::Run> run = ReadRun(/*tasks=*/true, &read);
    if (!read.ok()) run->set_tasks_omitted(true);
    run->set_state(summary_->state());
    run->set_reason(summary_->reason());
    final_ = std::move(run);
  }
  return final_;
}

std::shared_ptr<v1::Run> LiveRun::ReadRun(bool tasks, absl::Status* read) {
  std::shared_ptr<google::protobuf::Arena> arena = store::NewLargeArena();
  v1::Run* run = google::protobuf::Arena::CreateMessage<v1::Run>(arena.get());
  *read = deps_.runs->GetRunInto(id_, run, tasks);
  if (!read->ok()) run->Clear();
  run->set_id(id_);
  return std::shared_ptr<v1::Run>(std::move(arena), run);
}

bool LiveRun::WaitFor(absl::Duration timeout, v1::Run* run) {
  MutexLock lock(&mu_);
  bool ok = mu_.AwaitWithDeadline(
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; },
      absl::Now() + timeout);
  if (ok && run != nullptr) *run = *FinalLocked();
  return ok;
}

void LiveRun::Cancel(const std::string& reason) {
  MutexLock lock(&sched_mu_);
  ++cancels_;
  if (cancel_reason_.empty()) cancel_reason_ = reason;
  if (scheduler_ != nullptr) scheduler_->Cancel(reason);
}

void LiveRun::Drain(absl::Duration grace) {
  MutexLock lock(&sched_mu_);
  draining_ = true;
  drain_grace_ = grace;
  if (scheduler_ != nullptr) scheduler_->Drain(grace);
}

absl::StatusOr<v1::ApprovalStatus> LiveRun::DecideApproval(
    const std::string& task, const ApprovalDecision& decision) {
  // A run just resumed (or submitted) prepares before it schedules: a
  // decision arriving then waits for the scheduler, a bounded while.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (true) {
    absl::StatusOr<v1::ApprovalStatus> result =
        absl::FailedPreconditionError(absl::StrCat(
            "task ", task, " of run ", id_, " is not waiting for approval"));
    bool started = false;
    {
      MutexLock lock(&sched_mu_);
      if (scheduler_ != nullptr) {
        result = scheduler_->Decide(
            task, decision,
            [this](const std::string& name, const v1::ApprovalStatus& a) {
              return deps_.runs->RecordApproval(id_, name, a);
            });
        started = result.status().code() != absl::StatusCode::kUnavailable;
      }
    }
    if (started || done() || absl::Now() >= deadline) return result;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

void LiveRun::OnTaskEvent(const v1::TaskStateChanged& event) {
  v1::RunEvent e;
  *e.mutable_task_state() = event;
  Emit(std::move(e));
}

void LiveRun::HoldEvents() {
  MutexLock lock(&mu_);
  ++held_;
}

void LiveRun::ReleaseEvents() {
  MutexLock lock(&mu_);
  --held_;
}

namespace {

v1::RunEvent LogMarker(const std::string& task, uint32_t attempt,
                       std::string text) {
  v1::RunEvent e;
  v1::LogLine* log = e.mutable_log();
  log->set_task(task);
  log->set_attempt(attempt);
  log->set_stream(v1::LogLine::STDERR);
  log->set_text(std::move(text));
  return e;
}

}  // namespace

void LiveRun::PushLocked(v1::RunEvent event) {
  if (event.has_log()) ++pending_logs_;
  pending_.push_back(std::move(event));
}

void LiveRun::EmitLogLocked(v1::RunEvent event) {
  const EngineOptions& options = *deps_.options;
  const v1::LogLine& log = event.log();
  LogBudget& budget = log_budgets_[{log.task(), log.attempt()}];
  const int64_t size = static_cast<int64_t>(log.text().size());
  const bool over_budget =
      budget.lines >= options.max_log_events_per_attempt ||
      budget.bytes + size > options.max_log_event_bytes_per_attempt;
  if (!over_budget && pending_logs_ < options.max_pending_log_events) {
    ++budget.lines;
    budget.bytes += size;
    PushLocked(std::move(event));
    return;
  }
  ++budget.dropped;
  if (over_budget && !budget.noted) {
    budget.noted = true;
    PushLocked(LogMarker(
        log.task(), log.attempt(),
        absl::StrCat("[kiln: streaming limit of this attempt reached (",
                     options.max_log_events_per_attempt, " lines, ",
                     options.max_log_event_bytes_per_attempt,
                     " bytes); further lines go only to its log file]")));
  }
}

void LiveRun::Emit(v1::RunEvent event) {
  MutexLock lock(&mu_);
  if (event.has_log()) {
    EmitLogLocked(std::move(event));
    return;
  }
  if (event.has_task_state()) {
    const v1::TaskStateChanged& change = event.task_state();
    task_states_[change.task()] = change.state();
    if (change.state() == v1::TASK_SUCCEEDED ||
        change.state() == v1::TASK_CACHED) {
      finish_order_.push_back(change.task());
    }
  }
  if (event.has_task_state() &&
      event.task_state().state() != v1::TASK_RUNNING) {
    // The attempt is over: say how many of its lines were not streamed.
    auto it = log_budgets_.find(
        {event.task_state().task(), event.task_state().attempt()});
    if (it != log_budgets_.end()) {
      if (it->second.dropped > 0) {
        PushLocked(LogMarker(
            it->first.first, it->first.second,
            absl::StrCat("[kiln: ", it->second.dropped,
                         " log lines not streamed; the attempt's log file "
                         "has them, up to its size cap (kiln logs)]")));
      }
      log_budgets_.erase(it);
    }
  }
  PushLocked(std::move(event));
}

// Records pending events in batches (one transaction each) and delivers
// them to subscribers in sequence order.
void LiveRun::Pump() {
  while (true) {
    std::vector<v1::RunEvent> batch;
    bool stop;
    {
      MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(
          [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return (!pending_.empty() && held_ == 0) || pump_stop_;
          },
          absl::Now() + absl::Milliseconds(100));
      stop = pump_stop_;
      size_t n = std::min<size_t>(pending_.size(), 2000);
      for (size_t i = 0; i < n; ++i) {
        if (pending_.front().has_log()) --pending_logs_;
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      recording_ = n > 0;
    }
    if (!batch.empty()) {
      TraceRecorder* trace = deps_.options->trace.get();
      ScopedSpan span(trace, trace != nullptr ? trace->Track("event pump") : 0,
                      "record events");
      span.Arg("events", absl::StrCat(batch.size()));
      auto recorded = deps_.runs->AppendEvents(id_, std::move(batch));
      span.End();
      {
        MutexLock lock(&mu_);
        if (!recorded.ok()) {
          // Lost from the record (and from subscribers): the run fails.
          if (record_error_.ok()) record_error_ = recorded.status();
        } else if (!recorded->empty()) {
          appended_ = recorded->back().sequence();
        }
        recording_ = false;
      }
      if (recorded.ok() && !recorded->empty()) {
        MutexLock lock(&sub_mu_);
        for (auto& [sid, sub] : subs_) {
          for (const auto& e : *recorded) {
            if (e.sequence() > sub.last) {
              sub.cb(e);
              sub.last = e.sequence();
            }
          }
        }
      }
      continue;
    }
    if (stop) return;
  }
}

namespace {

std::string LostEventsReason(const absl::Status& error) {
  return absl::StrCat("events of this run could not be recorded: ",
                      error.message());
}

}  // namespace

void LiveRun::FinishRun(v1::RunState state, std::string reason,
                        const std::optional<std::string>& replay_fingerprint,
                        const TaskRunnerContext* ctx) {
  {
    MutexLock lock(&mu_);
    // Whether every earlier event was recorded decides the run's end: wait
    // for the pump to record them (or fail to) before the final event and
    // the notification say how the run ended.
    if (pump_.joinable()) {
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return (pending_.empty() && !recording_) || pump_stop_;
      });
    }
    if (!record_error_.ok() && state != v1::RUN_RUNNING) {
      state = v1::RUN_FAILED;
      reason = LostEventsReason(record_error_);
    }
  }
  // RUN_RUNNING: drained for a shutdown; the run is not over and gets no
  // final event (a later process resumes it). A replay may have recorded
  // it already (Replay).
  bool final_recorded;
  {
    MutexLock lock(&mu_);
    final_recorded = final_recorded_;
  }
  if (state != v1::RUN_RUNNING && !final_recorded) {
    Notify(state, reason);
    v1::RunEvent e;
    e.mutable_run_state()->set_state(state);
    e.mutable_run_state()->set_reason(reason);
    Emit(std::move(e));
  }
  {
    MutexLock lock(&mu_);
    pump_stop_ = true;
  }
  if (pump_.joinable()) pump_.join();
  // Every event is recorded: give up ownership (a drained run stays
  // leasable, to be resumed by the next owner).
  if (lease_ != nullptr) {
    if (state != v1::RUN_RUNNING) lease_->ReleaseFinished();
    lease_.reset();
  }
  // A replay's task statuses are made only when asked for (FinalLocked):
  // WaitSummary, all a JSON view needs, does without them.
  bool replayed;
  {
    MutexLock lock(&mu_);
    replayed = replayed_;
  }
  absl::Status recorded;
  std::shared_ptr<v1::Run> run = ReadRun(/*tasks=*/!replayed, &recorded);
  if (replay_fingerprint.has_value() && ctx != nullptr && recorded.ok() &&
      state == v1::RUN_SUCCEEDED && run->state() == v1::RUN_SUCCEEDED) {
    std::vector<std::string> order;
    {
      MutexLock lock(&mu_);
      order = finish_order_;
    }
    TraceRecorder* trace = deps_.options->trace.get();
    ScopedSpan span(trace, trace != nullptr ? trace->Track("run") : 0,
                    "record replay source");
    // Best effort: without the record the next run is an ordinary no-op.
    (void)RecordReplaySource(*replay_fingerprint, *run, order, *ctx);
  }
  MutexLock lock(&mu_);
  if (!record_error_.ok() && state != v1::RUN_RUNNING) {
    // Lost after the check above (the final batches).
    state = v1::RUN_FAILED;
    reason = LostEventsReason(record_error_);
  }
  if (state != v1::RUN_RUNNING) {
    run->set_state(state);
    run->set_reason(reason);
  }
  summary_ = run;
  if (!replayed) final_ = std::move(run);
  done_ = true;
}

void LiveRun::Notify(v1::RunState state, const std::string& reason) {
  // Without a plan there are no resolved params to send with.
  if (!planned_.ok() || pipeline().notify().empty()) return;
  notify::FinishedRun run;
  run.run_id = id_;
  run.state = state;
  run.reason = reason;
  run.trigger = trigger_;
  run.params = planned_->plan.params;
  run.public_url = deps_.options->public_url;
  {
    MutexLock lock(&mu_);
    for (const auto& [task, task_state] : task_states_) {
      if (task_state == v1::TASK_FAILED || task_state == v1::TASK_TIMED_OUT) {
        run.failed_tasks.push_back(task);
      }
    }
  }
  for (v1::RunEvent& e : NotifyRunEnd(deps_.runs, pipeline(), std::move(run))) {
    Emit(std::move(e));
  }
}

absl::StatusOr<cas::StashResult> LiveRun::StashSource() const {
  absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(source_dir_);
  if (!root.ok()) return root.status();
  std::vector<std::string> exclude;
  const std::string& file = pipeline().file();
  if (!pipeline().options().source_includes_pipeline_file() && !file.empty()) {
    // Anchored at the root, glob characters escaped: only this one file.
    std::string pattern = "/";
    for (char c : file) {
      if (c == '*' || c == '?' || c == '[' || c == '\\') pattern += '\\';
      pattern += c;
    }
    exclude.push_back(std::move(pattern));
  }
  return deps_.artifacts->StashDirAt(root->get(), source_dir_, source_dir_,
                                     exclude);
}

absl::StatusOr<TaskRunnerContext> LiveRun::RunnerContext() {
  const EngineOptions& options = *deps_.options;
  const pipeline::Plan& plan = planned_->plan;
  TaskRunnerContext ctx;
  ctx.run_id = id_;
  ctx.pipeline_name = pipeline().name();
  ctx.store_dir = options.store_dir;
  ctx.source_dir = source_dir_;
  ctx.substitution.params = plan.params;
  ctx.substitution.trigger = trigger_;
  for (const auto& p : pipeline().params()) {
    if (!p.secret()) continue;
    auto it = plan.params.find(p.name());
    if (it != plan.params.end()) ctx.secrets[p.name()] = it->second;
  }
  ctx.hmac_key = deps_.hmac_key;
  ctx.keep_workspaces = options.keep_workspaces;
  ctx.max_log_file_bytes = options.max_log_file_bytes;
  ctx.executors = ExecutorSet(options.executors, options.default_executor)
                      .ForPipeline(pipeline());
  ctx.executor = ctx.executors.Default();
  ctx.capabilities = ctx.executors.Capabilities();
  ctx.capabilities.cluster =
      kinds::ClusterCheck(options.kubeconfig_paths, options.kube_context);
  ctx.skip_unsupported = pipeline().options().unsupported() == v1::SKIP;
  ctx.artifacts = deps_.artifacts;
  ctx.action_cache = deps_.cache;
  ctx.run_store = deps_.runs;
  ctx.emit = [this](v1::RunEvent e) { Emit(std::move(e)); };
  ctx.images = options.image_store.get();
  ctx.image_sources = options.image_sources.get();
  ctx.trace = options.trace.get();
  ctx.kubeconfig_paths = options.kubeconfig_paths;
  ctx.kube_context = options.kube_context;
  ctx.environments.set_name(pipeline().name());
  *ctx.environments.mutable_environments() = pipeline().environments();
  if (!source_dir_.empty()) {
    ScopedSpan span(ctx.trace,
                    ctx.trace != nullptr ? ctx.trace->Track("run") : 0,
                    "stash source");
    auto stashed = StashSource();
    if (!stashed.ok()) {
      return absl::Status(
          stashed.status().code(),
          absl::StrCat("stashing the source: ", stashed.status().message()));
    }
    ctx.source_digest = stashed->tree.ToString();
  }
  return ctx;
}

SchedulerOptions LiveRun::SchedOptions() const {
  const EngineOptions& options = *deps_.options;
  SchedulerOptions sopts;
  sopts.parallelism = options.parallelism;
  sopts.retry_backoff = options.retry_backoff;
  sopts.attempts_used = attempts_used_;
  sopts.approvals = approvals_;
  sopts.trace = options.trace.get();
  const auto& popts = pipeline().options();
  sopts.on_failure = keep_going_ ? v1::CONTINUE : popts.on_failure();
  sopts.timeout = absl::Seconds(popts.timeout().seconds()) +
                  absl::Nanoseconds(popts.timeout().nanos());
  if (popts.has_finally_timeout()) {
    sopts.finally_timeout = absl::Seconds(popts.finally_timeout().seconds()) +
                            absl::Nanoseconds(popts.finally_timeout().nanos());
  }
  return sopts;
}

void LiveRun::Execute() {
  // RUN_RUNNING once the source is stashed and the run is not a replay (a
  // replay records it with its other events, in one transaction).
  auto running = [this] {
    v1::RunEvent e;
    e.mutable_run_state()->set_state(v1::RUN_RUNNING);
    Emit(std::move(e));
  };
  if (!planned_.ok()) {
    running();
    FinishRun(v1::RUN_FAILED, std::string(planned_.status().message()));
    return;
  }
  absl::StatusOr<TaskRunnerContext> ctx = RunnerContext();
  if (!ctx.ok()) {
    running();
    FinishRun(v1::RUN_FAILED, std::string(ctx.status().message()));
    return;
  }
  // A run whose roots equal a finished run's is recorded as its replay.
  std::optional<std::string> fingerprint;
  if (prior_.empty() && attempts_used_.empty() && approvals_.empty()) {
    TraceRecorder* trace = deps_.options->trace.get();
    ScopedSpan span(trace, trace != nullptr ? trace->Track("run") : 0,
                    "replay check");
    {
      ScopedSpan fp(trace, trace != nullptr ? trace->Track("run") : 0,
                    "fingerprint");
      fingerprint = ReplayFingerprint(*planned_, trigger_, *ctx);
    }
    if (fingerprint.has_value()) {
      SideThread side;
      std::vector<store::ReplayShardStamp> stamps;
      std::shared_ptr<const store::ReplaySource> source =
          UsableReplaySource(*fingerprint, *planned_, *ctx, &side, &stamps);
      span.End();
      if (source != nullptr && Replay(*source, stamps)) {
        FinishRun(v1::RUN_SUCCEEDED, "");
        return;
      }
    }
  }
  running();
  // Not a replay: the run's task rows (CreateRun left them to the start).
  if (absl::Status added = deps_.runs->AddTasks(id_); !added.ok()) {
    FinishRun(v1::RUN_FAILED,
              absl::StrCat("recording the run's tasks: ", added.message()));
    return;
  }
  // What recording a replay source needs after the run (stores only).
  TaskRunnerContext stores;
  stores.run_store = ctx->run_store;
  stores.action_cache = ctx->action_cache;
  stores.artifacts = ctx->artifacts;
  EngineTaskRunner runner(*std::move(ctx));
  // The plan decided the skips (`when`, and needs all skipped); the
  // scheduler consumes it.
  Scheduler scheduler(planned_->plan, prior_, &runner, this, SchedOptions());
  {
    MutexLock lock(&sched_mu_);
    scheduler_ = &scheduler;
    for (int i = 0; i < cancels_; ++i) scheduler.Cancel(cancel_reason_);
    if (draining_) scheduler.Drain(drain_grace_);
  }
  SchedulerResult result;
  {
    TraceRecorder* trace = deps_.options->trace.get();
    ScopedSpan span(trace, trace != nullptr ? trace->Track("run") : 0,
                    "schedule");
    result = scheduler.Run();
  }
  {
    MutexLock lock(&sched_mu_);
    scheduler_ = nullptr;
  }
  FinishRun(result.state, result.reason, fingerprint, &stores);
}

}  // namespace kiln
