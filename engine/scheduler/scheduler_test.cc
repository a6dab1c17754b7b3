#include "engine/scheduler/scheduler.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/pipeline/plan.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

// Scripted runner: each task's attempts follow a script; records order and
// the peak number of concurrent attempts.
class ScriptedRunner : public TaskRunner {
 public:
  using Script = std::function<AttemptOutcome(int attempt, CancelSignal*)>;

  void Set(const std::string& task, Script s) { scripts_[task] = s; }

  AttemptOutcome RunAttempt(const v1::Task& task, int attempt,
                            const std::map<std::string, v1::TaskStatus>& fin,
                            CancelSignal* cancel) override {
    int now = ++running_;
    {
      MutexLock lock(&mu_);
      peak_ = std::max(peak_, now);
      started_.push_back(task.name());
      seen_needs_[task.name()] = fin.size();
    }
    AttemptOutcome o;
    auto it = scripts_.find(task.name());
    if (it != scripts_.end()) {
      o = it->second(attempt, cancel);
    } else {
      absl::SleepFor(absl::Milliseconds(5));
      o.state = v1::TASK_SUCCEEDED;
    }
    --running_;
    return o;
  }

  std::vector<std::string> started() {
    MutexLock lock(&mu_);
    return started_;
  }
  int peak() {
    MutexLock lock(&mu_);
    return peak_;
  }

 private:
  std::map<std::string, Script> scripts_;
  std::atomic<int> running_{0};
  Mutex mu_;
  int peak_ = 0;
  std::vector<std::string> started_;
  std::map<std::string, size_t> seen_needs_;
};

class RecordingSink : public EventSink {
 public:
  void OnTaskEvent(const v1::TaskStateChanged& e) override {
    MutexLock lock(&mu_);
    events_.push_back(e);
  }
  std::vector<v1::TaskStateChanged> events() {
    MutexLock lock(&mu_);
    return events_;
  }

 private:
  Mutex mu_;
  std::vector<v1::TaskStateChanged> events_;
};

v1::Task* AddTask(v1::Pipeline* p, const std::string& name,
                  std::vector<std::string> needs = {}, bool fin = false) {
  v1::Task* t = fin ? p->add_finally() : p->add_tasks();
  t->set_name(name);
  for (auto& n : needs) t->add_needs(n);
  t->mutable_run()->add_command("true");
  return t;
}

AttemptOutcome Succeeded() {
  AttemptOutcome o;
  o.state = v1::TASK_SUCCEEDED;
  return o;
}

AttemptOutcome Fail(int code = 1) {
  AttemptOutcome o;
  o.state = v1::TASK_FAILED;
  o.exit_code = code;
  return o;
}

AttemptOutcome WaitForCancel(CancelSignal* c) {
  absl::Notification n;
  int id = c->OnCancel([&n] { n.Notify(); });
  bool got = n.WaitForNotificationWithTimeout(absl::Seconds(20));
  c->RemoveCallback(id);
  AttemptOutcome o;
  o.state = got ? v1::TASK_CANCELLED : v1::TASK_SUCCEEDED;
  o.retryable = false;
  return o;
}

// The run's plan, as the engine computes it once per run.
pipeline::Plan PlanOf(const v1::Pipeline& p, const v1::Trigger& trigger = {}) {
  absl::StatusOr<pipeline::Plan> plan = pipeline::ComputePlan(p, trigger);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *std::move(plan) : pipeline::Plan();
}

SchedulerOptions Fast() {
  SchedulerOptions o;
  o.retry_backoff = absl::Milliseconds(1);
  return o;
}

TEST(SchedulerTest, RunsDagInDependencyOrderWithinParallelism) {
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  AddTask(&p, "c", {"a"});
  AddTask(&p, "d", {"b", "c"});
  for (int i = 0; i < 20; ++i) AddTask(&p, "x" + std::to_string(i));
  ScriptedRunner runner;
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.parallelism = 3;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_LE(runner.peak(), 3);
  EXPECT_GE(runner.peak(), 2);
  auto order = runner.started();
  auto pos = [&](const std::string& n) {
    return std::find(order.begin(), order.end(), n) - order.begin();
  };
  EXPECT_LT(pos("a"), pos("b"));
  EXPECT_LT(pos("a"), pos("c"));
  EXPECT_LT(pos("b"), pos("d"));
  EXPECT_LT(pos("c"), pos("d"));
  EXPECT_EQ(r.tasks["d"].state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(r.tasks.size(), 24u);
}

// A task whose command has ended (CancelSignal::CommandDone) captures its
// outputs without a slot: with parallelism 1 the next task's command
// starts meanwhile, and a dependent still waits for the first to finish.
TEST(SchedulerTest, ATaskPastItsCommandHoldsNoSlot) {
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b");
  AddTask(&p, "c", {"a"});
  ScriptedRunner runner;
  absl::Notification b_started, a_may_finish;
  std::atomic<bool> c_before_a_finished{false};
  std::atomic<bool> a_finished{false};
  runner.Set("a", [&](int, CancelSignal* cancel) {
    cancel->CommandDone();
    cancel->CommandDone();  // a second call changes nothing
    // "Capturing outputs" until b has started and said so.
    EXPECT_TRUE(b_started.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_TRUE(a_may_finish.WaitForNotificationWithTimeout(absl::Seconds(20)));
    a_finished = true;
    return Succeeded();
  });
  runner.Set("b", [&](int, CancelSignal*) {
    b_started.Notify();
    absl::SleepFor(absl::Milliseconds(50));
    a_may_finish.Notify();
    return Succeeded();
  });
  runner.Set("c", [&](int, CancelSignal*) {
    if (!a_finished) c_before_a_finished = true;
    return Succeeded();
  });
  SchedulerOptions opts = Fast();
  opts.parallelism = 1;
  pipeline::Plan plan = PlanOf(p);
  RecordingSink sink;
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(runner.peak(), 2);  // a (past its command) and b
  EXPECT_FALSE(c_before_a_finished);
  EXPECT_EQ(r.tasks["c"].state(), v1::TASK_SUCCEEDED);
}

// Without CommandDone a task holds its slot to the end.
TEST(SchedulerTest, ParallelismOneRunsOneAttemptAtATime) {
  v1::Pipeline p;
  for (int i = 0; i < 6; ++i) AddTask(&p, "t" + std::to_string(i));
  ScriptedRunner runner;
  SchedulerOptions opts = Fast();
  opts.parallelism = 1;
  pipeline::Plan plan = PlanOf(p);
  RecordingSink sink;
  Scheduler s(plan, {}, &runner, &sink, opts);
  EXPECT_EQ(s.Run().state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(runner.peak(), 1);
}

TEST(SchedulerTest, HugeParallelismStartsNoThreadPerSlot) {
  // One thread per slot up front would need millions of threads (and abort
  // with std::system_error); workers are bounded by the phase's tasks.
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  ScriptedRunner runner;
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.parallelism = 50000000;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(r.tasks["b"].state(), v1::TASK_SUCCEEDED);
}

TEST(SchedulerTest, PlannedSkipsPropagateUnlessOptedOut) {
  v1::Pipeline p;
  AddTask(&p, "a")->mutable_when()->mutable_branch()->set_pattern("main");
  AddTask(&p, "b", {"a"});
  AddTask(&p, "c", {"a"})->set_run_if_needs_skipped(true);
  AddTask(&p, "d", {"a", "e"});
  AddTask(&p, "e");
  ScriptedRunner runner;
  RecordingSink sink;
  v1::Trigger trigger;
  trigger.set_branch("x");
  pipeline::Plan plan = PlanOf(p, trigger);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(r.tasks["a"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["a"].reason(), "branch 'x' does not match main");
  EXPECT_EQ(r.tasks["b"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["b"].reason(), "every task it needs is skipped (a)");
  EXPECT_EQ(r.tasks["c"].state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(r.tasks["d"].state(), v1::TASK_SUCCEEDED);  // e ran
  std::vector<std::string> started = runner.started();
  std::sort(started.begin(), started.end());
  EXPECT_EQ(started, (std::vector<std::string>{"c", "d", "e"}));
}

// A task skipped when it runs (not by the plan) propagates by the same rule.
TEST(SchedulerTest, SkipsAtRunTimePropagateByTheSameRule) {
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  AddTask(&p, "c", {"a"})->set_run_if_needs_skipped(true);
  AddTask(&p, "d", {"a", "e"});
  AddTask(&p, "e");
  AddTask(&p, "f", {"b"});
  ScriptedRunner runner;
  runner.Set("a", [](int, CancelSignal*) {
    AttemptOutcome o;
    o.state = v1::TASK_SKIPPED;
    o.reason = "not implemented";
    return o;
  });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(r.tasks["b"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["b"].reason(), "every task it needs is skipped (a)");
  EXPECT_EQ(r.tasks["f"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["c"].state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(r.tasks["d"].state(), v1::TASK_SUCCEEDED);
}

TEST(SchedulerTest, FailFastSkipsPendingAndCancelsRunning) {
  v1::Pipeline p;
  AddTask(&p, "slow");
  AddTask(&p, "bad");
  AddTask(&p, "after", {"bad"});
  AddTask(&p, "other", {"slow"});
  AddTask(&p, "cleanup", {}, /*fin=*/true);
  ScriptedRunner runner;
  runner.Set("slow", [](int, CancelSignal* c) { return WaitForCancel(c); });
  runner.Set("bad", [](int, CancelSignal*) {
    absl::SleepFor(absl::Milliseconds(20));
    return Fail(3);
  });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_FAILED);
  EXPECT_EQ(r.tasks["bad"].state(), v1::TASK_FAILED);
  EXPECT_EQ(r.tasks["bad"].exit_code(), 3);
  EXPECT_EQ(r.tasks["slow"].state(), v1::TASK_CANCELLED);
  EXPECT_EQ(r.tasks["after"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["other"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["cleanup"].state(), v1::TASK_SUCCEEDED);
}

TEST(SchedulerTest, ContinueOnFailureRunsIndependentTasks) {
  v1::Pipeline p;
  AddTask(&p, "bad");
  AddTask(&p, "after", {"bad"});
  AddTask(&p, "independent");
  AddTask(&p, "later", {"independent"});
  ScriptedRunner runner;
  runner.Set("bad", [](int, CancelSignal*) { return Fail(); });
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.on_failure = v1::CONTINUE;
  opts.parallelism = 1;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_FAILED);
  EXPECT_EQ(r.tasks["after"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["after"].reason(), "needs bad, which failed");
  EXPECT_EQ(r.tasks["later"].state(), v1::TASK_SUCCEEDED);
}

TEST(SchedulerTest, RetriesWithBackoffThenSucceeds) {
  v1::Pipeline p;
  v1::Task* t = AddTask(&p, "flaky");
  t->mutable_hints()->set_retries(2);
  ScriptedRunner runner;
  std::vector<int> attempts;
  runner.Set("flaky", [&](int attempt, CancelSignal*) {
    attempts.push_back(attempt);
    if (attempt < 3) return Fail();
    AttemptOutcome o;
    o.state = v1::TASK_SUCCEEDED;
    return o;
  });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(attempts, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(r.tasks["flaky"].attempts(), 3u);
  int pending_events = 0;
  for (const auto& e : sink.events()) {
    if (e.state() == v1::TASK_PENDING) ++pending_events;
  }
  EXPECT_EQ(pending_events, 2);
}

TEST(SchedulerTest, RetriesExhausted) {
  v1::Pipeline p;
  AddTask(&p, "bad")->mutable_hints()->set_retries(1);
  ScriptedRunner runner;
  int calls = 0;
  runner.Set("bad", [&](int, CancelSignal*) {
    ++calls;
    return Fail(7);
  });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  SchedulerResult r = s.Run();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r.tasks["bad"].state(), v1::TASK_FAILED);
  EXPECT_EQ(r.tasks["bad"].attempts(), 2u);
}

TEST(SchedulerTest, BackoffDoublesAndCaps) {
  EXPECT_EQ(RetryBackoff(1, absl::Seconds(1), absl::Seconds(10)),
            absl::Seconds(1));
  EXPECT_EQ(RetryBackoff(3, absl::Seconds(1), absl::Seconds(10)),
            absl::Seconds(4));
  EXPECT_EQ(RetryBackoff(30, absl::Seconds(1), absl::Seconds(10)),
            absl::Seconds(10));
}

TEST(SchedulerTest, CancelIsGracefulThenFinallyRuns) {
  v1::Pipeline p;
  AddTask(&p, "long");
  AddTask(&p, "next", {"long"});
  AddTask(&p, "cleanup", {}, true);
  ScriptedRunner runner;
  absl::Notification started;
  runner.Set("long", [&](int, CancelSignal* c) {
    started.Notify();
    return WaitForCancel(c);
  });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  std::thread canceller([&] {
    started.WaitForNotification();
    s.Cancel("cancelled by user");
  });
  SchedulerResult r = s.Run();
  canceller.join();
  EXPECT_EQ(r.state, v1::RUN_CANCELLED);
  EXPECT_EQ(r.reason, "cancelled by user");
  EXPECT_EQ(r.tasks["long"].state(), v1::TASK_CANCELLED);
  EXPECT_EQ(r.tasks["next"].state(), v1::TASK_CANCELLED);
  EXPECT_EQ(r.tasks["cleanup"].state(), v1::TASK_SUCCEEDED);
}

TEST(SchedulerTest, SecondCancelStopsFinally) {
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "cleanup", {}, true);
  ScriptedRunner runner;
  absl::Notification in_finally;
  // Atomic: absl::Notification's ordering is invisible to TSan (Debian's
  // Abseil is not instrumented).
  std::atomic<CancelSignal*> finally_signal{nullptr};
  runner.Set("cleanup", [&](int, CancelSignal* c) {
    finally_signal.store(c);
    in_finally.Notify();
    return WaitForCancel(c);
  });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  bool cancelled_by_first = true;
  std::thread canceller([&] {
    in_finally.WaitForNotification();
    s.Cancel("first");  // graceful: finally keeps running
    // Cancel acts before it returns: the finally task was left alone.
    cancelled_by_first = finally_signal.load()->cancelled();
    s.Cancel("second");
  });
  SchedulerResult r = s.Run();
  canceller.join();
  EXPECT_FALSE(cancelled_by_first) << "a graceful cancel stopped finally";
  EXPECT_EQ(r.state, v1::RUN_CANCELLED);
  EXPECT_EQ(r.tasks["a"].state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(r.tasks["cleanup"].state(), v1::TASK_CANCELLED);
}

TEST(SchedulerTest, PipelineTimeoutCancelsRunningAndSkipsPending) {
  v1::Pipeline p;
  AddTask(&p, "hang");
  AddTask(&p, "next", {"hang"});
  AddTask(&p, "cleanup", {}, true);
  ScriptedRunner runner;
  runner.Set("hang", [](int, CancelSignal* c) { return WaitForCancel(c); });
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.timeout = absl::Milliseconds(100);
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_TIMED_OUT);
  EXPECT_EQ(r.tasks["hang"].state(), v1::TASK_TIMED_OUT);
  EXPECT_EQ(r.tasks["next"].state(), v1::TASK_SKIPPED);
  EXPECT_EQ(r.tasks["cleanup"].state(), v1::TASK_SUCCEEDED);
}

TEST(SchedulerTest, ResumeSkipsTasksFinishedEarlier) {
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  std::map<std::string, v1::TaskStatus> prior;
  prior["a"].set_name("a");
  prior["a"].set_state(v1::TASK_SUCCEEDED);
  (*prior["a"].mutable_outputs())["app"] = "sha256:00";
  ScriptedRunner runner;
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, prior, &runner, &sink, Fast());
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_EQ(runner.started(), std::vector<std::string>{"b"});
  EXPECT_EQ(r.tasks["a"].outputs().at("app"), "sha256:00");
}

TEST(SchedulerTest, DrainLetsRunningFinishAndLeavesTheRestPending) {
  v1::Pipeline p;
  AddTask(&p, "running");
  AddTask(&p, "next", {"running"});
  AddTask(&p, "stuck");
  AddTask(&p, "cleanup", {}, true);
  ScriptedRunner runner;
  absl::Notification started;
  absl::Notification drain_requested;
  runner.Set("running", [&](int, CancelSignal*) {
    started.Notify();
    // Finishes only once the drain is in effect (Drain acts before it
    // returns), well within the grace.
    drain_requested.WaitForNotification();
    AttemptOutcome o;
    o.state = v1::TASK_SUCCEEDED;
    return o;
  });
  runner.Set("stuck", [](int, CancelSignal* c) { return WaitForCancel(c); });
  RecordingSink sink;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, Fast());
  std::thread drainer([&] {
    started.WaitForNotification();
    // The grace only bounds how long "stuck" runs on; "running" ends
    // right after the drain request, however loaded the machine.
    s.Drain(absl::Seconds(2));
    drain_requested.Notify();
  });
  SchedulerResult r = s.Run();
  drainer.join();
  EXPECT_EQ(r.state, v1::RUN_RUNNING);
  EXPECT_EQ(r.tasks["running"].state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(r.tasks["next"].state(), v1::TASK_PENDING);   // never started
  EXPECT_EQ(r.tasks["stuck"].state(), v1::TASK_PENDING);  // interrupted
  EXPECT_EQ(r.tasks.count("cleanup"), 0u);                // finally not run
  for (const auto& e : sink.events()) {
    EXPECT_NE(e.task(), "next") << "a drained run starts nothing new";
    if (e.task() == "stuck" && e.state() != v1::TASK_RUNNING) {
      EXPECT_EQ(e.state(), v1::TASK_PENDING);
    }
  }
}

TEST(SchedulerTest, EveryTaskGetsExactlyOneFinalEvent) {
  v1::Pipeline p;
  for (int i = 0; i < 200; ++i) {
    std::vector<std::string> needs;
    if (i > 0) needs.push_back("t" + std::to_string(i / 2));
    AddTask(&p, "t" + std::to_string(i), needs);
  }
  ScriptedRunner runner;
  runner.Set("t7", [](int, CancelSignal*) { return Fail(); });
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.on_failure = v1::CONTINUE;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  s.Run();
  std::map<std::string, int> finals;
  for (const auto& e : sink.events()) {
    if (IsFinal(e.state())) ++finals[e.task()];
  }
  EXPECT_EQ(finals.size(), 200u);
  for (const auto& [t, n] : finals) EXPECT_EQ(n, 1) << t;
}

// A runner whose TryCached reports the tasks in `cached` as hits (with an
// output), recording each batch it was offered and the thread it ran on.
class CachingRunner : public ScriptedRunner {
 public:
  explicit CachingRunner(std::set<std::string> cached)
      : cached_(std::move(cached)) {}

  std::vector<std::optional<AttemptOutcome>> TryCached(
      const std::vector<ReadyTask>& ready) override {
    std::vector<std::optional<AttemptOutcome>> out(ready.size());
    std::vector<std::string> batch;
    MutexLock lock(&cmu_);
    for (size_t i = 0; i < ready.size(); ++i) {
      const std::string& name = ready[i].task->name();
      batch.push_back(name);
      ++offers_[name];
      attempts_[name] = ready[i].attempt;
      finished_seen_[name] = ready[i].finished.size();
      threads_.insert(std::this_thread::get_id());
      if (cached_.count(name) == 0) continue;
      AttemptOutcome o;
      o.state = v1::TASK_CACHED;
      o.reason = "cache hit";
      o.cache_key = "key-" + name;
      o.outputs["art-" + name] = "sha256:" + name;
      out[i] = std::move(o);
    }
    batches_.push_back(std::move(batch));
    return out;
  }

  Mutex cmu_;
  std::set<std::string> cached_;
  std::map<std::string, int> offers_;
  std::map<std::string, int> attempts_;
  std::map<std::string, size_t> finished_seen_;
  std::set<std::thread::id> threads_;
  std::vector<std::vector<std::string>> batches_;
};

TEST(SchedulerTest, CachedTasksNeverReachAWorker) {
  // A chain and a fan-out, all cached: each layer is offered as one batch
  // once its needs are final, no attempt runs, and the events are those of
  // a worker's hit (RUNNING, then CACHED, attempt 1).
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  AddTask(&p, "c", {"a"});
  AddTask(&p, "d", {"b", "c"});
  p.mutable_tasks(3)->add_inputs()->set_artifact("art-b");
  CachingRunner runner({"a", "b", "c", "d"});
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.parallelism = 1;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  EXPECT_TRUE(runner.started().empty());
  MutexLock lock(&runner.cmu_);
  ASSERT_EQ(runner.batches_.size(), 3u);
  EXPECT_EQ(runner.batches_[0], std::vector<std::string>({"a"}));
  EXPECT_EQ(runner.batches_[1], std::vector<std::string>({"b", "c"}));
  EXPECT_EQ(runner.batches_[2], std::vector<std::string>({"d"}));
  // The offer carries what the task reads: d consumes b's artifact.
  EXPECT_EQ(runner.finished_seen_["d"], 1u);
  EXPECT_EQ(runner.threads_.size(), 1u);
  for (const std::string t : {"a", "b", "c", "d"}) {
    EXPECT_EQ(r.tasks[t].state(), v1::TASK_CACHED) << t;
    EXPECT_EQ(r.tasks[t].attempts(), 1u) << t;
    EXPECT_EQ(r.tasks[t].cache_key(), "key-" + t) << t;
    EXPECT_EQ(r.tasks[t].outputs().at("art-" + t), "sha256:" + t) << t;
    EXPECT_EQ(runner.offers_[t], 1) << t;
  }
  std::map<std::string, std::vector<v1::TaskState>> seen;
  for (const auto& e : sink.events()) {
    seen[e.task()].push_back(e.state());
    EXPECT_EQ(e.attempt(), 1u);
  }
  for (const std::string t : {"a", "b", "c", "d"}) {
    EXPECT_EQ(seen[t],
              std::vector<v1::TaskState>({v1::TASK_RUNNING, v1::TASK_CACHED}))
        << t;
  }
}

TEST(SchedulerTest, CacheMissesRunOnWorkersAndAreOfferedOnce) {
  // b misses: it runs on a worker (after one offer); c, which needs b, is
  // offered when b is done and hits. A resumed task's offer carries the
  // attempt after those an earlier process used.
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  AddTask(&p, "c", {"b"});
  AddTask(&p, "slow");
  CachingRunner runner({"a", "c"});
  runner.Set("slow", [](int, CancelSignal*) {
    absl::SleepFor(absl::Milliseconds(50));
    AttemptOutcome o;
    o.state = v1::TASK_SUCCEEDED;
    return o;
  });
  RecordingSink sink;
  SchedulerOptions opts = Fast();
  opts.parallelism = 1;
  opts.attempts_used["c"] = 2;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  SchedulerResult r = s.Run();
  EXPECT_EQ(r.state, v1::RUN_SUCCEEDED);
  std::vector<std::string> started = runner.started();
  std::sort(started.begin(), started.end());
  EXPECT_EQ(started, std::vector<std::string>({"b", "slow"}));
  EXPECT_EQ(r.tasks["a"].state(), v1::TASK_CACHED);
  EXPECT_EQ(r.tasks["b"].state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(r.tasks["c"].state(), v1::TASK_CACHED);
  EXPECT_EQ(r.tasks["c"].attempts(), 3u);
  MutexLock lock(&runner.cmu_);
  EXPECT_EQ(runner.offers_["b"], 1);
  EXPECT_EQ(runner.offers_["slow"], 1);
  EXPECT_EQ(runner.attempts_["c"], 3);
}

TEST(SchedulerTest, ProfileSpansNestOnEachTasksTrack) {
  v1::Pipeline p;
  AddTask(&p, "a");
  AddTask(&p, "b", {"a"});
  CachingRunner runner({"a"});
  RecordingSink sink;
  TraceRecorder trace;
  SchedulerOptions opts = Fast();
  opts.trace = &trace;
  pipeline::Plan plan = PlanOf(p);
  Scheduler s(plan, {}, &runner, &sink, opts);
  EXPECT_EQ(s.Run().state, v1::RUN_SUCCEEDED);
  std::string json = trace.ToJson();
  // a: a hit (a task span, no attempt); b: queued, attempt 1, hand-back.
  EXPECT_NE(json.find("\"task a\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"task b\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"attempt 1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"queued\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"hand-back\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"TASK_CACHED\""), std::string::npos) << json;
  // a, b: task; b: queued, attempt 1, hand-back.
  EXPECT_EQ(trace.span_count(), 5u) << json;
}

}  // namespace
}  // namespace kiln
