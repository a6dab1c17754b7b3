#include "engine/service/testing/fake_engine.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/cas/content_store.h"
#include "engine/pipeline/validate.h"
#include "engine/store/action_cache.h"
#include "engine/store/log_file.h"
#include "engine/store/run_store.h"

namespace kiln::service::testing {
namespace {

bool IsFinal(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED || state == v1::RUN_TIMED_OUT;
}

bool TaskDone(v1::TaskState state) {
  return state != v1::TASK_PENDING && state != v1::TASK_RUNNING &&
         state != v1::TASK_STATE_UNSPECIFIED;
}

v1::RunEvent RunStateEvent(v1::RunState state, const std::string& reason) {
  v1::RunEvent event;
  event.mutable_run_state()->set_state(state);
  event.mutable_run_state()->set_reason(reason);
  return event;
}

v1::RunEvent TaskEvent(const std::string& task, v1::TaskState state,
                       uint32_t attempt, int exit_code) {
  v1::RunEvent event;
  v1::TaskStateChanged* change = event.mutable_task_state();
  change->set_task(task);
  change->set_state(state);
  change->set_attempt(attempt);
  change->set_exit_code(exit_code);
  return event;
}

// Delivers the store's events to one callback on its own thread.
class Subscription {
 public:
  Subscription(store::RunStore* runs, std::string run_id, uint64_t after,
               EventCallback callback)
      : thread_([this, runs, run_id, after, callback] {
          uint64_t last = after;
          while (!stop_) {
            absl::StatusOr<std::vector<v1::RunEvent>> events =
                runs->ReadEvents(run_id, last, 1000);
            if (!events.ok()) return;
            for (const v1::RunEvent& event : *events) {
              if (stop_) return;
              callback(event);
              last = event.sequence();
              if (event.has_run_state() && IsFinal(event.run_state().state())) {
                return;
              }
            }
            (void)runs->WaitForEvents(run_id, last, absl::Milliseconds(50));
          }
        }) {}
  ~Subscription() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class FakeRunHandle : public RunHandle {
 public:
  FakeRunHandle(FakeEngine* engine, std::string id)
      : engine_(engine), id_(std::move(id)) {}

  const std::string& id() const override { return id_; }

  int Subscribe(uint64_t after_seq, EventCallback callback) override {
    engine_->CountSubscribe();
    MutexLock lock(&mu_);
    int id = next_++;
    subscriptions_[id] = std::make_unique<Subscription>(
        &engine_->store().runs(), id_, after_seq, std::move(callback));
    return id;
  }

  void Unsubscribe(int subscription) override {
    std::unique_ptr<Subscription> gone;
    {
      MutexLock lock(&mu_);
      auto it = subscriptions_.find(subscription);
      if (it == subscriptions_.end()) return;
      gone = std::move(it->second);
      subscriptions_.erase(it);
    }
    gone.reset();  // joins: no callback after this returns
  }

  v1::Run Wait() override {
    v1::Run run;
    while (!WaitFor(absl::Seconds(1), &run)) {
    }
    return run;
  }

  bool WaitFor(absl::Duration timeout, v1::Run* run) override {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<v1::Run> current = engine_->GetRun(id_);
      if (current.ok() && IsFinal(current->state())) {
        *run = *current;
        return true;
      }
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void Cancel(const std::string& reason) override {
    (void)engine_->Cancel(id_, reason);
  }

  ~FakeRunHandle() override {
    std::map<int, std::unique_ptr<Subscription>> gone;
    MutexLock lock(&mu_);
    gone.swap(subscriptions_);
  }

 private:
  FakeEngine* const engine_;
  const std::string id_;
  Mutex mu_;
  int next_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int, std::unique_ptr<Subscription>> subscriptions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<FakeEngine>> FakeEngine::Create(
    FakeEngineOptions options) {
  auto store = store::Store::Open(options.store_dir);
  if (!store.ok()) return store.status();
  return std::unique_ptr<FakeEngine>(
      new FakeEngine(std::move(options), std::move(*store)));
}

FakeEngine::FakeEngine(FakeEngineOptions options,
                       std::unique_ptr<store::Store> store)
    : options_(std::move(options)),
      store_(std::move(store)),
      runs_(&store_->runs()) {}

FakeEngine::~FakeEngine() { Shutdown(absl::ZeroDuration()); }

void FakeEngine::Hold() {
  MutexLock lock(&mu_);
  held_ = true;
}

void FakeEngine::Release() {
  MutexLock lock(&mu_);
  held_ = false;
}

void FakeEngine::HoldSubmits() {
  MutexLock lock(&mu_);
  submits_held_ = true;
}

void FakeEngine::ReleaseSubmits() {
  MutexLock lock(&mu_);
  submits_held_ = false;
}

bool FakeEngine::WaitWhileHeld(Runner* runner) {
  MutexLock lock(&mu_);
  while (held_ && !stopping_ && !runner->cancel) {
    mu_.AwaitWithDeadline(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !held_ || stopping_; },
        absl::Now() + absl::Milliseconds(20));
  }
  return !stopping_;
}

void FakeEngine::StartRunner(const std::string& run_id,
                             std::unique_ptr<store::RunLease> lease) {
  if (lease == nullptr) {  // not under mu_: the creation lock may wait
    absl::StatusOr<std::unique_ptr<store::FileLock>> taking =
        store::RunLease::LockCreation(options_.store_dir, /*exclusive=*/true);
    if (!taking.ok()) return;
    absl::StatusOr<std::unique_ptr<store::RunLease>> taken =
        store::RunLease::Acquire(options_.store_dir, run_id);
    if (!taken.ok()) return;  // a live owner executes it
    lease = std::move(*taken);
  }
  MutexLock lock(&mu_);
  if (stopping_ || runners_.count(run_id) > 0) return;
  auto runner = std::make_unique<Runner>();
  runner->lease = std::move(lease);
  Runner* raw = runner.get();
  runner->thread = std::thread([this, run_id, raw] { Execute(run_id, raw); });
  runners_[run_id] = std::move(runner);
}

void FakeEngine::Execute(const std::string& run_id, Runner* runner) {
  std::unique_ptr<store::RunLease> lease = std::move(runner->lease);
  absl::StatusOr<v1::Pipeline> pipeline = runs_->GetPipeline(run_id);
  absl::StatusOr<v1::Run> run = runs_->GetRun(run_id);
  if (!pipeline.ok() || !run.ok()) return;
  auto append = [&](v1::RunEvent event) {
    (void)runs_->AppendEvents(run_id, {std::move(event)});
  };
  if (run->state() == v1::RUN_QUEUED) {
    append(RunStateEvent(v1::RUN_RUNNING, ""));
  }
  std::vector<v1::Task> tasks(pipeline->tasks().begin(),
                              pipeline->tasks().end());
  bool failed = false;
  for (const v1::Task& task : tasks) {
    v1::TaskState recorded = v1::TASK_PENDING;
    uint32_t attempts = 0;
    for (const v1::TaskStatus& status : run->tasks()) {
      if (status.name() == task.name()) {
        recorded = status.state();
        attempts = status.attempts();
      }
    }
    if (TaskDone(recorded)) {
      failed = failed || recorded == v1::TASK_FAILED;
      continue;
    }
    if (!WaitWhileHeld(runner)) return;  // shutdown: stays unfinished
    if (runner->cancel) {
      append(TaskEvent(task.name(), v1::TASK_CANCELLED, attempts, 0));
      continue;
    }
    uint32_t attempt = attempts + 1;
    append(TaskEvent(task.name(), v1::TASK_RUNNING, attempt, 0));
    auto log = store::AttemptLogFile::Open(store_->dir(), run_id, task.name(),
                                           attempt);
    std::string command = absl::StrJoin(task.run().command(), " ");
    for (int i = 0; log.ok() && i < options_.log_lines; ++i) {
      (void)(*log)->AppendLine(
          store::LogStream::kStdout,
          absl::StrCat(task.name(), " line ", i, ": ", command), absl::Now());
      (void)(*log)->Flush();
      absl::SleepFor(options_.step);
    }
    if (log.ok()) {
      (void)(*log)->Close();
      (void)runs_->RecordAttemptLog(run_id, task.name(), attempt,
                                    (*log)->relative_path(), (*log)->bytes());
    }
    bool fails =
        task.run().command_size() > 0 && task.run().command(0) == "false";
    failed = failed || fails;
    append(TaskEvent(task.name(), fails ? v1::TASK_FAILED : v1::TASK_SUCCEEDED,
                     attempt, fails ? 1 : 0));
  }
  if (runner->cancel) {
    append(RunStateEvent(v1::RUN_CANCELLED, runner->reason));
  } else {
    append(RunStateEvent(failed ? v1::RUN_FAILED : v1::RUN_SUCCEEDED, ""));
  }
  lease->ReleaseFinished();
}

absl::StatusOr<std::shared_ptr<RunHandle>> FakeEngine::Submit(
    RunRequest request) {
  ++submit_calls_;
  {
    MutexLock lock(&mu_);
    ++submits_waiting_;
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !submits_held_ || stopping_;
    });
    --submits_waiting_;
    if (stopping_) return absl::UnavailableError("engine shut down");
  }
  std::vector<pipeline::Diagnostic> errors =
      pipeline::ValidatePipeline(request.pipeline);
  if (!errors.empty()) return pipeline::DiagnosticsToStatus(errors);
  // As the real engine: creators hold the creation lock shared until they
  // hold the new run's lease (run_lease.h).
  absl::StatusOr<std::unique_ptr<store::FileLock>> creating =
      store::RunLease::LockCreation(options_.store_dir, /*exclusive=*/false);
  if (!creating.ok()) return creating.status();
  absl::StatusOr<store::CreatedRun> created =
      runs_->CreateRun(request.pipeline, request.trigger, request.source_dir,
                       request.idempotency_key);
  if (!created.ok()) return created.status();
  if (created->created) {
    absl::StatusOr<std::unique_ptr<store::RunLease>> lease =
        store::RunLease::Acquire(options_.store_dir, created->run_id);
    if (!lease.ok()) return lease.status();
    StartRunner(created->run_id, std::move(*lease));
  }
  return std::shared_ptr<RunHandle>(
      std::make_shared<FakeRunHandle>(this, created->run_id));
}

absl::StatusOr<std::shared_ptr<RunHandle>> FakeEngine::Resume(
    const std::string& run_id) {
  absl::StatusOr<v1::Run> run = runs_->GetRun(run_id);
  if (!run.ok()) return run.status();
  if (!IsFinal(run->state())) StartRunner(run_id);
  return Find(run_id);
}

absl::StatusOr<Engine::ResumeReport> FakeEngine::ResumeUnfinished() {
  absl::StatusOr<std::vector<std::string>> ids = runs_->UnfinishedRuns();
  if (!ids.ok()) return ids.status();
  for (const std::string& id : *ids) StartRunner(id);
  ResumeReport report;
  report.resumed = *std::move(ids);
  return report;
}

absl::StatusOr<std::shared_ptr<RunHandle>> FakeEngine::Retry(
    const std::string& run_id) {
  absl::StatusOr<v1::Run> run = runs_->GetRun(run_id);
  if (!run.ok()) return run.status();
  if (!IsFinal(run->state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is not finished"));
  }
  RunRequest request;
  absl::StatusOr<v1::Pipeline> pipeline = runs_->GetPipeline(run_id);
  if (!pipeline.ok()) return pipeline.status();
  request.pipeline = *pipeline;
  request.trigger = run->trigger();
  return Submit(std::move(request));
}

absl::StatusOr<std::shared_ptr<RunHandle>> FakeEngine::Find(
    const std::string& run_id) {
  absl::StatusOr<v1::Run> run = runs_->GetRun(run_id);
  if (!run.ok()) return run.status();
  return std::shared_ptr<RunHandle>(
      std::make_shared<FakeRunHandle>(this, run_id));
}

absl::StatusOr<v1::Run> FakeEngine::GetRun(const std::string& run_id) {
  return runs_->GetRun(run_id);
}

absl::StatusOr<v1::ApprovalStatus> FakeEngine::DecideApproval(
    const std::string& run_id, const std::string& task, bool,
    const std::string&, const std::string&) {
  absl::StatusOr<v1::Run> run = runs_->GetRun(run_id);
  if (!run.ok()) return run.status();
  return absl::FailedPreconditionError(
      absl::StrCat("task ", task, " is not waiting for approval"));
}

absl::Status FakeEngine::Cancel(const std::string& run_id,
                                const std::string& reason) {
  absl::StatusOr<v1::Run> run = runs_->GetRun(run_id);
  if (!run.ok()) return run.status();
  MutexLock lock(&mu_);
  auto it = runners_.find(run_id);
  if (it == runners_.end() || IsFinal(run->state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is not executing here"));
  }
  if (!it->second->cancel) {
    it->second->reason = reason;
    it->second->cancel = true;
  }
  return absl::OkStatus();
}

void FakeEngine::Shutdown(absl::Duration grace) {
  std::map<std::string, std::unique_ptr<Runner>> runners;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    runners.swap(runners_);
  }
  for (auto& [id, runner] : runners) runner->thread.join();
}

}  // namespace kiln::service::testing
