// An engine's life around its runs: idempotent submission, resume after a
// shutdown or a killed owner, two engines racing for a run, bounded output
// and event queues, and owner-only store files.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "base/testing/files.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/plan.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
// AnOutputFloodStaysBoundedInMemoryLogsAndRunStore bounds this process's
// peak RSS. ASan keeps freed memory in a quarantine of up to 256 MB before
// reusing it, so a faster flood (more lines freed in its 3 s) measured the
// quarantine instead of the engine; a small one keeps the bound meaningful.
extern "C" const char* __asan_default_options() {
  return "quarantine_size_mb=16";
}
#endif
#endif

namespace kiln {
namespace {

namespace fs = std::filesystem;
using engine_testing::BuildTestPipeline;
using engine_testing::EngineTest;
using engine_testing::MakeEngine;
using engine_testing::ReadFile;
using engine_testing::TempDir;
using engine_testing::WriteFile;

// WaitShared hands out the final run itself: the same object to every
// caller, equal to Wait's copy and to the run as recorded.
TEST_F(EngineTest, WaitSharedIsTheFinalRunWithoutACopy) {
  RunRequest req;
  req.pipeline = BuildTestPipeline();
  req.source_dir = source_;
  auto run = engine_->Submit(std::move(req));
  ASSERT_TRUE(run.ok()) << run.status();
  std::shared_ptr<const v1::Run> shared = (*run)->WaitShared();
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ((*run)->WaitShared().get(), shared.get());
  EXPECT_EQ(shared->id(), (*run)->id());
  EXPECT_EQ(shared->state(), v1::RUN_SUCCEEDED) << shared->reason();
  EXPECT_EQ(Task(*shared, "build").state(), v1::TASK_SUCCEEDED);
  v1::Run copy = (*run)->Wait();
  EXPECT_EQ(copy.SerializeAsString(), shared->SerializeAsString());
  v1::Run within;
  ASSERT_TRUE((*run)->WaitFor(absl::Seconds(1), &within));
  EXPECT_EQ(within.SerializeAsString(), shared->SerializeAsString());
}

TEST_F(EngineTest, IdempotencyKeyReturnsTheSameRun) {
  RunRequest req;
  req.pipeline = BuildTestPipeline();
  req.source_dir = source_;
  req.idempotency_key = "submit-1";
  auto a = engine_->Submit(req);
  ASSERT_TRUE(a.ok());
  (*a)->Wait();
  auto b = engine_->Submit(req);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*a)->id(), (*b)->id());
  EXPECT_EQ(Executed(), 2u);
}

TEST_F(EngineTest, ResumeContinuesAnUnfinishedRun) {
  // Record a run whose first task finished before the "crash".
  v1::Run first = Run(BuildTestPipeline());
  std::string app = Task(first, "build").outputs().at("app");
  auto& runs = engine_->store().runs();
  auto created =
      runs.CreateRun(BuildTestPipeline(), v1::Trigger(), source_, "");
  ASSERT_TRUE(created.ok());
  std::vector<v1::RunEvent> events(3);
  events[0].mutable_run_state()->set_state(v1::RUN_RUNNING);
  events[1].mutable_task_state()->set_task("build");
  events[1].mutable_task_state()->set_state(v1::TASK_RUNNING);
  events[2].mutable_task_state()->set_task("build");
  events[2].mutable_task_state()->set_state(v1::TASK_SUCCEEDED);
  store::TaskOutputs outputs;
  outputs.outputs["app"] = app;
  ASSERT_TRUE(runs.SetTaskOutputs(created->run_id, "build", outputs).ok());
  ASSERT_TRUE(runs.AppendEvents(created->run_id, events).ok());
  // Make the cache useless so that only "not executing again" can explain
  // build not running.
  executor_->On("make", [](const v1::ExecRequest& req) {
    FakeScript s;
    if (req.argv(1) == "build") s.Exit(99);
    return s;
  });
  auto resumed = engine_->Resume(created->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  v1::Run result = (*resumed)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_EQ(Task(result, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(result, "test").state(), v1::TASK_CACHED);
}

TEST_F(EngineTest, ShutdownCheckpointsAndTheNextEngineResumes) {
  executor_->On("sleep", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Stdout("sleeping").Delay(absl::Seconds(30));
    return s;
  });
  v1::Pipeline p = BuildTestPipeline();
  v1::Task* slow = p.add_tasks();
  slow->set_name("slow");
  slow->add_needs("build");
  slow->mutable_run()->add_command("sleep");
  RunRequest req;
  req.pipeline = p;
  req.source_dir = source_;
  auto run = engine_->Submit(req);
  ASSERT_TRUE(run.ok());
  absl::Notification sleeping;
  (*run)->Subscribe(0, [&](const v1::RunEvent& e) {
    if (e.has_log() && e.log().text() == "sleeping" &&
        !sleeping.HasBeenNotified()) {
      sleeping.Notify();
    }
  });
  ASSERT_TRUE(sleeping.WaitForNotificationWithTimeout(absl::Seconds(20)));
  std::string id = (*run)->id();
  engine_->Shutdown(absl::Milliseconds(100));
  EXPECT_FALSE(engine_->Submit(req).ok()) << "no submits after Shutdown";
  auto recorded = engine_->GetRun(id);
  ASSERT_TRUE(recorded.ok());
  EXPECT_EQ(recorded->state(), v1::RUN_RUNNING) << "the run is not over";
  engine_.reset();

  // The next engine on the store resumes it; now `slow` is quick.
  executor_->On("sleep", [](const v1::ExecRequest&) { return FakeScript(); });
  auto next = MakeEngine(store_, executor_);
  ASSERT_NE(next, nullptr);
  auto resumed = next->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(resumed->resumed, std::vector<std::string>{id});
  EXPECT_TRUE(resumed->not_resumed.empty());
  auto handle = next->Find(id);
  ASSERT_TRUE(handle.ok());
  v1::Run result = (*handle)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_EQ(Task(result, "slow").state(), v1::TASK_SUCCEEDED);
  // The interrupted attempt was 1: the re-executed one is 2, with a log of
  // its own.
  EXPECT_EQ(Task(result, "slow").attempts(), 2u);
  ASSERT_GE(executor_->requests().size(), 1u);
  EXPECT_EQ(executor_->requests().back().attempt(), 2u);
  auto logs = next->store().runs().AttemptLogs(id, "slow");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 2u);
  EXPECT_EQ((*logs)[0].attempt, 1u);
  EXPECT_EQ((*logs)[1].attempt, 2u);
  EXPECT_NE((*logs)[0].path, (*logs)[1].path);
  EXPECT_TRUE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[0].path), "sleeping"));
  EXPECT_FALSE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[1].path), "sleeping"))
      << "the new attempt does not append to the old attempt's log";
}

// Records a run of one task "block" in the store, as if an engine had
// created it, and returns its id.
std::string RecordBlockRun(store::RunStore& runs) {
  v1::Pipeline p;
  p.set_name("owned");
  v1::Task* t = p.add_tasks();
  t->set_name("block");
  t->mutable_run()->add_command("block");
  auto created = runs.CreateRun(p, v1::Trigger(), "", "");
  EXPECT_TRUE(created.ok()) << created.status();
  return created.ok() ? created->run_id : "";
}

TEST_F(EngineTest, TwoEnginesRacingToResumeARunOneRefuses) {
  absl::Notification started;
  executor_->On("block", [&](const v1::ExecRequest&) {
    if (!started.HasBeenNotified()) started.Notify();
    FakeScript s;
    s.Delay(absl::Hours(1));  // until cancelled
    return s;
  });
  std::string id = RecordBlockRun(engine_->store().runs());
  auto other = MakeEngine(store_, executor_);
  ASSERT_NE(other, nullptr);

  absl::StatusOr<std::shared_ptr<RunHandle>> a, b;
  std::thread ta([&] { a = engine_->Resume(id); });
  std::thread tb([&] { b = other->Resume(id); });
  ta.join();
  tb.join();
  ASSERT_NE(a.ok(), b.ok()) << "exactly one engine owns the run: " << a.status()
                            << " / " << b.status();
  const absl::Status& refused = a.ok() ? b.status() : a.status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "another kiln process"))
      << refused;
  Engine* owner = a.ok() ? engine_.get() : other.get();
  Engine* loser = a.ok() ? other.get() : engine_.get();
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // Starting up (kiln serve) does not take it either.
  auto resumed = loser->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(resumed->resumed.empty());
  // Said, with why: the run's owner is another live process.
  ASSERT_EQ(resumed->not_resumed.size(), 1u);
  EXPECT_EQ(resumed->not_resumed[0].first, id);
  EXPECT_TRUE(absl::StrContains(resumed->not_resumed[0].second.message(),
                                "being executed by another kiln process"))
      << resumed->not_resumed[0].second;
  auto seen = loser->GetRun(id);
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->owner_gone()) << "its owner is alive";
  EXPECT_EQ(executor_->requests().size(), 1u) << "executed once";

  ASSERT_TRUE(owner->Cancel(id, "test over").ok());
  auto handle = owner->Find(id);
  ASSERT_TRUE(handle.ok());
  EXPECT_EQ((*handle)->Wait().state(), v1::RUN_CANCELLED);
  // Finished: the lease is gone and so is any claim to take the run over.
  auto done = loser->GetRun(id);
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(done->owner_gone());
}

TEST_F(EngineTest, AKilledOwnersRunShowsInterruptedAndIsTakenOver) {
  // A process of its own owns a run, blocked in its task.
  std::string helper = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                    "/kiln/engine/engine_owner_helper");
  std::vector<char*> argv = {helper.data(), store_.data(), nullptr};
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{child};
  // The helper prints the run id once its task is running.
  std::string id;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') id.push_back(c);
  close(out[0]);
  ASSERT_FALSE(id.empty()) << "the helper failed";

  auto live = engine_->GetRun(id);
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(live->state(), v1::RUN_RUNNING);
  EXPECT_FALSE(live->owner_gone());
  auto refused = engine_->Resume(id);
  ASSERT_FALSE(refused.ok()) << "the live owner keeps its run";
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                absl::StrCat("pid ", child)))
      << refused.status();

  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  reaper.pid = 0;

  // Still "running" in the records, but visibly ownerless.
  auto orphan = engine_->GetRun(id);
  ASSERT_TRUE(orphan.ok());
  EXPECT_EQ(orphan->state(), v1::RUN_RUNNING);
  EXPECT_TRUE(orphan->owner_gone());
  auto page = engine_->store().runs().ListRuns({}, 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->runs.size(), 1u);
  EXPECT_TRUE(page->runs[0].owner_gone());

  // A resume takes it over; the killed attempt was 1, this one is 2.
  executor_->On("block", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Stdout("quick");
    return s;
  });
  auto resumed = engine_->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(resumed->resumed, std::vector<std::string>{id});
  auto handle = engine_->Find(id);
  ASSERT_TRUE(handle.ok());
  v1::Run result = (*handle)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_FALSE(result.owner_gone());
  EXPECT_EQ(Task(result, "block").attempts(), 2u);
  ASSERT_EQ(executor_->requests().size(), 1u);
  EXPECT_EQ(executor_->requests()[0].attempt(), 2u);
  auto logs = engine_->store().runs().AttemptLogs(id, "block");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].attempt, 2u);
  EXPECT_FALSE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[0].path), "blocking"));
}

// Peak resident set of this process, in KiB.
int64_t PeakRssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

TEST_F(EngineTest, AnOutputFloodStaysBoundedInMemoryLogsAndRunStore) {
  const int64_t rss_before = PeakRssKib();
  // Prints until its timeout: far more lines than any cap.
  executor_->On("flood", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Flood(std::string(60, 'y'));
    return s;
  });
  v1::Pipeline p;
  p.set_name("flood");
  v1::Task* t = p.add_tasks();
  t->set_name("yes");
  t->mutable_run()->add_command("flood");
  t->mutable_hints()->mutable_timeout()->set_seconds(3);
  std::vector<v1::RunEvent> events;
  v1::Run run = Run(p, {}, &events);
  // Stopped by its timeout (or by the executor's output limit).
  EXPECT_NE(Task(run, "yes").state(), v1::TASK_SUCCEEDED) << run.reason();

  int64_t log_events = 0;
  int64_t not_streamed = 0;
  bool limit_marker = false;
  for (const auto& e : events) {
    if (!e.has_log()) continue;
    ++log_events;
    const std::string& text = e.log().text();
    if (absl::StrContains(text, "streaming limit of this attempt reached")) {
      limit_marker = true;
    }
    if (absl::StartsWith(text, "[kiln: ") &&
        absl::StrContains(text, "log lines not streamed")) {
      not_streamed = std::strtoll(text.c_str() + 7, nullptr, 10);
    }
  }
  const EngineOptions defaults;
  EXPECT_LE(log_events, defaults.max_log_events_per_attempt + 2);
  EXPECT_TRUE(limit_marker);
  EXPECT_GT(not_streamed, 0) << "the flood outran the cap";

  // The stored log is capped (the task sets no max_log_bytes: the engine's
  // default applies) and says so.
  auto logs = engine_->store().runs().AttemptLogs(run.id(), "yes");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  std::string log = ReadFile(store_ + "/" + (*logs)[0].path);
  EXPECT_LE(static_cast<int64_t>(log.size()), defaults.max_log_file_bytes);
  if (not_streamed + defaults.max_log_events_per_attempt >
      defaults.max_log_file_bytes / 60) {
    EXPECT_TRUE(absl::StrContains(log, "log truncated"));
  }

  // runs.db (with its WAL) holds at most the streamed budget.
  int64_t db_bytes = 0;
  for (const char* f : {"/runs.db", "/runs.db-wal"}) {
    std::error_code ec;
    auto size = fs::file_size(store_ + f, ec);
    if (!ec) db_bytes += static_cast<int64_t>(size);
  }
  EXPECT_LT(db_bytes, 16 << 20);
  const int64_t rss_after = PeakRssKib();
  ASSERT_GT(rss_before, 0);
  EXPECT_LT(rss_after - rss_before, 256 * 1024) << "KiB of peak RSS growth";
}

TEST_F(EngineTest, LinesDroppedByAFullEventQueueAreCountedInAMarker) {
  // A queue bound of zero drops every line from the stream, deterministically.
  auto engine = MakeEngine(store_, executor_, [](EngineOptions& options) {
    options.max_pending_log_events = 0;
  });
  ASSERT_NE(engine, nullptr);
  executor_->On("talk", [](const v1::ExecRequest&) {
    FakeScript s;
    for (int i = 0; i < 5; ++i) s.Stdout(absl::StrCat("line ", i));
    return s;
  });
  RunRequest req;
  req.pipeline.set_name("talk");
  v1::Task* t = req.pipeline.add_tasks();
  t->set_name("talk");
  t->mutable_run()->add_command("talk");
  auto run = engine->Submit(req);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ((*run)->Wait().state(), v1::RUN_SUCCEEDED);
  std::vector<std::string> lines;
  (*run)->Subscribe(0, [&](const v1::RunEvent& e) {
    if (e.has_log()) lines.push_back(e.log().text());
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(lines[0], "[kiln: 5 log lines not streamed"))
      << lines[0];
  // The log file has them all.
  auto logs = engine->store().runs().AttemptLogs((*run)->id(), "talk");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_TRUE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[0].path), "line 4"));
}

// Events the run store refuses are lost from the record and from every
// watcher: the run cannot end as a success (a cache hit, for one, is
// recorded only by its event).
std::atomic<int> appends_before_failure{0};

TEST_F(EngineTest, ARunWhoseEventsCannotBeRecordedFails) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  // Another source: the next run is not a replay of the first (whose
  // record, in one transaction, loses nothing when it fails).
  WriteFile(source_ + "/src/other.c", "int other;\n");
  // The first append of the next run (its start, perhaps with the cached
  // tasks' events) fails, and every one after it succeeds again. The
  // failure is slow to come: the run is over before its pump learns of it.
  appends_before_failure = 1;
  store::SetAppendEventsHookForTesting([](absl::string_view) {
    if (--appends_before_failure != 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(300));
    return absl::UnavailableError("the disk went away");
  });
  v1::Run second = Run(BuildTestPipeline());
  store::SetAppendEventsHookForTesting(nullptr);
  EXPECT_EQ(second.state(), v1::RUN_FAILED);
  EXPECT_TRUE(absl::StrContains(second.reason(), "could not be recorded"))
      << second.reason();
  EXPECT_TRUE(absl::StrContains(second.reason(), "the disk went away"))
      << second.reason();
  // Nor does the record claim success: the run's end waits to learn of the
  // lost batch, and its final event (recorded: the store works again) says
  // the run failed.
  auto stored = engine_->store().runs().GetRun(second.id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::RUN_FAILED);
  EXPECT_TRUE(absl::StrContains(stored->reason(), "the disk went away"))
      << stored->reason();

  // A store that records again: the next run succeeds from the cache.
  v1::Run third = Run(BuildTestPipeline());
  EXPECT_EQ(third.state(), v1::RUN_SUCCEEDED);
}

TEST_F(EngineTest, StoreFilesAreOwnerOnly) {
  Run(BuildTestPipeline());
  for (const char* f :
       {"/runs.db", "/runs.db-wal", "/runs.db-shm", "/action_cache.db"}) {
    struct stat st;
    ASSERT_EQ(stat((store_ + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  for (const std::string& d : {store_, store_ + "/logs"}) {
    struct stat st;
    ASSERT_EQ(stat(d.c_str(), &st), 0) << d;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
}

}  // namespace
}  // namespace kiln
