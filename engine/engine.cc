#include "engine/engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/base/mutex.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/content_store.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/plan.h"
#include "engine/pipeline/validate.h"
#include "engine/run/task_runner.h"
#include "engine/scheduler/scheduler.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"

namespace kiln {
namespace {

bool IsFinalRun(v1::RunState s) {
  return s == v1::RUN_SUCCEEDED || s == v1::RUN_FAILED ||
         s == v1::RUN_CANCELLED || s == v1::RUN_TIMED_OUT;
}

// The store's HMAC key for secrets in cache keys: 32 random bytes, created
// once (owner-only) and shared by every process on the store.
absl::StatusOr<std::string> LoadHmacKey(const std::string& store_dir) {
  std::string path = store_dir + "/secret.key";
  std::ifstream in(path, std::ios::binary);
  std::string key((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  if (key.size() == 32) return key;
  std::string fresh(32, '\0');
  std::ifstream rnd("/dev/urandom", std::ios::binary);
  rnd.read(fresh.data(), fresh.size());
  if (rnd.gcount() != 32) return absl::InternalError("reading /dev/urandom");
  std::string tmp = absl::StrCat(path, ".tmp", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("cannot create " + path);
  bool ok = write(fd, fresh.data(), fresh.size()) == 32 && fsync(fd) == 0;
  close(fd);
  // link() fails if another process won the race; then use theirs.
  if (ok && link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) ok = false;
  unlink(tmp.c_str());
  if (!ok) return absl::InternalError("cannot write " + path);
  return LoadHmacKey(store_dir);
}

class EngineImpl;

// A run executing in this process: a scheduler thread plus an event pump
// that records events in batches and hands them to subscribers.
class LiveRun : public RunHandle, public EventSink {
 public:
  LiveRun(EngineImpl* engine, std::string id, v1::Pipeline pipeline,
          v1::Trigger trigger, std::string source_dir, bool keep_going,
          std::map<std::string, v1::TaskStatus> prior);
  ~LiveRun() override;

  const std::string& id() const override { return id_; }
  int Subscribe(uint64_t after_seq, EventCallback callback) override;
  void Unsubscribe(int subscription) override;
  v1::Run Wait() override;
  bool WaitFor(absl::Duration timeout, v1::Run* run) override;
  void Cancel(const std::string& reason) override;
  // Checkpoint for shutdown (Scheduler::Drain): the run stays unfinished in
  // the store and resumes later.
  void Drain(absl::Duration grace);

  void OnTaskEvent(const v1::TaskStateChanged& event) override;
  void Start();
  bool done() {
    MutexLock lock(&mu_);
    return done_;
  }

 private:
  void Execute();
  void Emit(v1::RunEvent event);
  void Pump();
  void FinishRun(v1::RunState state, const std::string& reason);

  EngineImpl* engine_;
  const std::string id_;
  const v1::Pipeline pipeline_;
  v1::Trigger trigger_;
  const std::string source_dir_;
  const bool keep_going_;
  std::map<std::string, v1::TaskStatus> prior_;
  std::thread thread_;
  std::thread pump_;

  Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool pump_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::RunEvent> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;  // last seq recorded
  v1::Run final_ ABSL_GUARDED_BY(mu_);

  // Cancel/Drain requests and the scheduler they go to. A lock of its own:
  // the scheduler calls back into Emit (mu_) while holding its locks, so
  // mu_ must never be held while calling into the scheduler.
  Mutex sched_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  int cancels_ ABSL_GUARDED_BY(sched_mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(sched_mu_) = false;
  absl::Duration drain_grace_ ABSL_GUARDED_BY(sched_mu_);
  std::string cancel_reason_ ABSL_GUARDED_BY(sched_mu_);
  Scheduler* scheduler_ ABSL_GUARDED_BY(sched_mu_) = nullptr;

  // Subscribers; delivery happens under sub_mu_ so that replay and live
  // delivery never interleave.
  struct Sub {
    uint64_t last;
    EventCallback cb;
  };
  Mutex sub_mu_;
  std::map<int, Sub> subs_ ABSL_GUARDED_BY(sub_mu_);
  int next_sub_ ABSL_GUARDED_BY(sub_mu_) = 0;
};

// A recorded run that is not executing in this process.
class RecordedRun : public RunHandle {
 public:
  RecordedRun(store::RunStore* runs, std::string id)
      : runs_(runs), id_(std::move(id)) {}
  const std::string& id() const override { return id_; }
  int Subscribe(uint64_t after_seq, EventCallback callback) override {
    while (true) {
      auto events = runs_->ReadEvents(id_, after_seq, 1000);
      if (!events.ok() || events->empty()) break;
      for (const auto& e : *events) callback(e);
      after_seq = events->back().sequence();
    }
    return 0;
  }
  void Unsubscribe(int) override {}
  v1::Run Wait() override {
    v1::Run run;
    while (!WaitFor(absl::Seconds(1), &run)) {
    }
    return run;
  }
  bool WaitFor(absl::Duration timeout, v1::Run* run) override {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      auto r = runs_->GetRun(id_);
      if (r.ok()) *run = *r;
      if (!r.ok() || IsFinalRun(r->state())) return true;
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  void Cancel(const std::string&) override {}

 private:
  store::RunStore* runs_;
  std::string id_;
};

class EngineImpl : public Engine {
 public:
  EngineImpl(EngineOptions options, std::unique_ptr<store::RunStore> runs,
             std::unique_ptr<store::ActionCache> cache,
             std::unique_ptr<cas::ContentStore> blobs,
             std::unique_ptr<cas::ArtifactStore> artifacts,
             std::string hmac_key)
      : options_(std::move(options)),
        runs_(std::move(runs)),
        cache_(std::move(cache)),
        blobs_(std::move(blobs)),
        artifacts_(std::move(artifacts)),
        hmac_key_(std::move(hmac_key)) {}

  ~EngineImpl() override { Shutdown(absl::Seconds(30)); }

  absl::StatusOr<std::shared_ptr<RunHandle>> Submit(
      RunRequest request) override {
    {
      MutexLock lock(&mu_);
      if (shutdown_) return absl::UnavailableError("engine is shutting down");
    }
    auto diags = pipeline::ValidatePipeline(request.pipeline, nullptr);
    if (!diags.empty()) return pipeline::DiagnosticsToStatus(diags);
    auto plan = pipeline::ComputePlan(request.pipeline, request.trigger);
    if (!plan.ok()) return plan.status();
    if (!request.source_dir.empty()) {
      std::error_code ec;
      request.source_dir =
          std::filesystem::absolute(request.source_dir, ec).lexically_normal();
    }
    auto created =
        runs_->CreateRun(request.pipeline, request.trigger, request.source_dir,
                         request.idempotency_key);
    if (!created.ok()) return created.status();
    if (!created->created) return Find(created->run_id);
    return StartRun(created->run_id, std::move(request.pipeline),
                    std::move(request.trigger), request.source_dir,
                    request.keep_going, {});
  }

  absl::StatusOr<std::shared_ptr<RunHandle>> Resume(
      const std::string& run_id) override {
    {
      MutexLock lock(&mu_);
      auto it = live_.find(run_id);
      if (it != live_.end()) return std::shared_ptr<RunHandle>(it->second);
    }
    auto run = runs_->GetRun(run_id);
    if (!run.ok()) return run.status();
    if (IsFinalRun(run->state())) {
      return std::shared_ptr<RunHandle>(
          std::make_shared<RecordedRun>(runs_.get(), run_id));
    }
    auto pipeline = runs_->GetPipeline(run_id);
    if (!pipeline.ok()) return pipeline.status();
    auto source = runs_->GetSourceDir(run_id);
    if (!source.ok()) return source.status();
    std::map<std::string, v1::TaskStatus> prior;
    for (const auto& t : run->tasks()) {
      if (IsFinal(t.state())) prior[t.name()] = t;
    }
    return StartRun(run_id, std::move(*pipeline), run->trigger(), *source,
                    false, std::move(prior));
  }

  absl::StatusOr<std::vector<std::string>> ResumeUnfinished() override {
    auto ids = runs_->UnfinishedRuns();
    if (!ids.ok()) return ids.status();
    std::vector<std::string> resumed;
    for (const auto& id : *ids) {
      if (Resume(id).ok()) resumed.push_back(id);
    }
    return resumed;
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
    RunRequest req;
    req.pipeline = std::move(*pipeline);
    req.trigger = run->trigger();
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
        std::make_shared<RecordedRun>(runs_.get(), run_id));
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
    for (auto& r : runs) r->Wait();
    MutexLock lock(&mu_);
    live_.clear();
  }

  store::RunStore& run_store() override { return *runs_; }
  store::ActionCache& action_cache() override { return *cache_; }
  cas::ContentStore& content_store() override { return *blobs_; }
  const std::string& store_dir() const override { return options_.store_dir; }

  const EngineOptions& options() const { return options_; }
  cas::ArtifactStore* artifacts() { return artifacts_.get(); }
  store::ActionCache* cache() { return cache_.get(); }
  store::RunStore* runs() { return runs_.get(); }
  const std::string& hmac_key() const { return hmac_key_; }

  void Forget(const std::string& id) {
    MutexLock lock(&mu_);
    // Keep finished runs reachable through the store only.
    auto it = live_.find(id);
    if (it != live_.end() && it->second->done()) live_.erase(it);
  }

 private:
  absl::StatusOr<std::shared_ptr<RunHandle>> StartRun(
      const std::string& id, v1::Pipeline pipeline, v1::Trigger trigger,
      const std::string& source_dir, bool keep_going,
      std::map<std::string, v1::TaskStatus> prior) {
    auto run = std::make_shared<LiveRun>(this, id, std::move(pipeline),
                                         std::move(trigger), source_dir,
                                         keep_going, std::move(prior));
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
  std::unique_ptr<store::RunStore> runs_;
  std::unique_ptr<store::ActionCache> cache_;
  std::unique_ptr<cas::ContentStore> blobs_;
  std::unique_ptr<cas::ArtifactStore> artifacts_;
  const std::string hmac_key_;

  Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<LiveRun>> live_ ABSL_GUARDED_BY(mu_);
};

LiveRun::LiveRun(EngineImpl* engine, std::string id, v1::Pipeline pipeline,
                 v1::Trigger trigger, std::string source_dir, bool keep_going,
                 std::map<std::string, v1::TaskStatus> prior)
    : engine_(engine),
      id_(std::move(id)),
      pipeline_(std::move(pipeline)),
      trigger_(std::move(trigger)),
      source_dir_(std::move(source_dir)),
      keep_going_(keep_going),
      prior_(std::move(prior)) {}

LiveRun::~LiveRun() {
  if (thread_.joinable()) thread_.join();
  if (pump_.joinable()) pump_.join();
}

void LiveRun::Start() {
  auto last = engine_->runs()->LastSequence(id_);
  {
    MutexLock lock(&mu_);
    appended_ = last.ok() ? *last : 0;
  }
  pump_ = std::thread([this] { Pump(); });
  thread_ = std::thread([this] { Execute(); });
}

int LiveRun::Subscribe(uint64_t after_seq, EventCallback callback) {
  MutexLock lock(&sub_mu_);
  // Replay what is recorded; the pump delivers later events (it takes
  // sub_mu_ too, so nothing is missed or delivered twice).
  uint64_t last = after_seq;
  while (true) {
    auto events = engine_->runs()->ReadEvents(id_, last, 1000);
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

v1::Run LiveRun::Wait() {
  MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; });
  return final_;
}

bool LiveRun::WaitFor(absl::Duration timeout, v1::Run* run) {
  MutexLock lock(&mu_);
  bool ok = mu_.AwaitWithDeadline(
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; },
      absl::Now() + timeout);
  if (ok && run != nullptr) *run = final_;
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

void LiveRun::OnTaskEvent(const v1::TaskStateChanged& event) {
  v1::RunEvent e;
  *e.mutable_task_state() = event;
  Emit(std::move(e));
}

void LiveRun::Emit(v1::RunEvent event) {
  MutexLock lock(&mu_);
  pending_.push_back(std::move(event));
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
            return !pending_.empty() || pump_stop_;
          },
          absl::Now() + absl::Milliseconds(100));
      stop = pump_stop_;
      size_t n = std::min<size_t>(pending_.size(), 2000);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    if (!batch.empty()) {
      auto recorded = engine_->runs()->AppendEvents(id_, std::move(batch));
      if (recorded.ok() && !recorded->empty()) {
        {
          MutexLock lock(&mu_);
          appended_ = recorded->back().sequence();
        }
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

void LiveRun::FinishRun(v1::RunState state, const std::string& reason) {
  // RUN_RUNNING: drained for a shutdown; the run is not over and gets no
  // final event (a later process resumes it).
  if (state != v1::RUN_RUNNING) {
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
  auto run = engine_->runs()->GetRun(id_);
  MutexLock lock(&mu_);
  if (run.ok()) final_ = *run;
  final_.set_id(id_);
  if (state != v1::RUN_RUNNING) {
    final_.set_state(state);
    final_.set_reason(reason);
  }
  done_ = true;
}

void LiveRun::Execute() {
  const EngineOptions& options = engine_->options();
  {
    v1::RunEvent e;
    e.mutable_run_state()->set_state(v1::RUN_RUNNING);
    Emit(std::move(e));
  }
  auto plan = pipeline::ComputePlan(pipeline_, trigger_);
  if (!plan.ok()) {
    FinishRun(v1::RUN_FAILED, std::string(plan.status().message()));
    return;
  }
  TaskRunnerContext ctx;
  ctx.run_id = id_;
  ctx.pipeline_name = pipeline_.name();
  ctx.store_dir = options.store_dir;
  ctx.source_dir = source_dir_;
  ctx.substitution.params = plan->params;
  ctx.substitution.trigger = trigger_;
  absl::flat_hash_set<std::string> secret_names;
  for (const auto& p : pipeline_.params()) {
    if (p.secret()) {
      secret_names.insert(p.name());
      auto it = plan->params.find(p.name());
      if (it != plan->params.end()) ctx.secrets[p.name()] = it->second;
    }
  }
  ctx.hmac_key = engine_->hmac_key();
  ctx.keep_workspaces = options.keep_workspaces;
  ctx.executor = options.executor.get();
  ctx.artifacts = engine_->artifacts();
  ctx.action_cache = engine_->cache();
  ctx.run_store = engine_->runs();
  ctx.emit = [this](v1::RunEvent e) { Emit(std::move(e)); };
  if (!source_dir_.empty()) {
    auto stashed = engine_->artifacts()->Stash(source_dir_);
    if (!stashed.ok()) {
      FinishRun(v1::RUN_FAILED, absl::StrCat("stashing the source: ",
                                             stashed.status().message()));
      return;
    }
    ctx.source_digest = stashed->tree.ToString();
  }

  // `when` decides statically; the scheduler propagates skips.
  v1::Trigger resolved = trigger_;
  for (const auto& [k, v] : plan->params) (*resolved.mutable_params())[k] = v;
  std::map<std::string, std::string> skips;
  auto consider = [&](const v1::Task& t) {
    if (!t.has_when()) return;
    auto r = pipeline::EvaluateCondition(t.when(), resolved, secret_names);
    if (!r.holds) skips[t.name()] = r.reason;
  };
  for (const auto& t : pipeline_.tasks()) consider(t);
  for (const auto& t : pipeline_.finally()) consider(t);

  SchedulerOptions sopts;
  sopts.parallelism = options.parallelism;
  sopts.retry_backoff = options.retry_backoff;
  sopts.on_failure =
      keep_going_ ? v1::CONTINUE : pipeline_.options().on_failure();
  const auto& popts = pipeline_.options();
  sopts.timeout = absl::Seconds(popts.timeout().seconds()) +
                  absl::Nanoseconds(popts.timeout().nanos());
  if (popts.has_finally_timeout()) {
    sopts.finally_timeout = absl::Seconds(popts.finally_timeout().seconds()) +
                            absl::Nanoseconds(popts.finally_timeout().nanos());
  }
  EngineTaskRunner runner(std::move(ctx));
  Scheduler scheduler(pipeline_, std::move(skips), prior_, &runner, this,
                      sopts);
  {
    MutexLock lock(&sched_mu_);
    scheduler_ = &scheduler;
    for (int i = 0; i < cancels_; ++i) scheduler.Cancel(cancel_reason_);
    if (draining_) scheduler.Drain(drain_grace_);
  }
  SchedulerResult result = scheduler.Run();
  {
    MutexLock lock(&sched_mu_);
    scheduler_ = nullptr;
  }
  FinishRun(result.state, result.reason);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(EngineOptions options) {
  if (options.store_dir.empty()) {
    return absl::InvalidArgumentError("EngineOptions.store_dir is required");
  }
  if (options.executor == nullptr) {
    return absl::InvalidArgumentError("EngineOptions.executor is required");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.store_dir, ec);
  options.store_dir =
      std::filesystem::absolute(options.store_dir, ec).lexically_normal();
  if (!options.store_dir.empty() && options.store_dir.back() == '/') {
    options.store_dir.pop_back();
  }
  auto runs = store::RunStore::Open(options.store_dir);
  if (!runs.ok()) return runs.status();
  auto cache = store::ActionCache::Open(options.store_dir);
  if (!cache.ok()) return cache.status();
  auto blobs = cas::ContentStore::Open(options.store_dir);
  if (!blobs.ok()) return blobs.status();
  auto artifacts = cas::ArtifactStore::Open(options.store_dir);
  if (!artifacts.ok()) return artifacts.status();
  auto key = LoadHmacKey(options.store_dir);
  if (!key.ok()) return key.status();
  return std::unique_ptr<Engine>(new EngineImpl(
      std::move(options), std::move(*runs), std::move(*cache),
      std::move(*blobs), std::move(*artifacts), std::move(*key)));
}

}  // namespace kiln
