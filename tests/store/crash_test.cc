// Crash test of the run store: a child process creates runs and appends
// events (and log references, outputs and log lines) as fast as it can; the
// parent kill -9s it at random moments, then reopens the store and checks
// that nothing is torn:
//   - PRAGMA integrity_check is "ok" and no foreign key is dangling;
//   - the store always opens;
//   - every run's events are numbered 1..last_seq without gaps;
//   - the runs/tasks/attempts tables agree with a replay of the events;
//   - every run has all its pipeline's tasks (CreateRun is atomic);
//   - every complete line of an attempt log parses.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/store/log_file.h"
#include "engine/store/run_store.h"
#include "engine/store/sqlite.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

constexpr int kIterations = 24;
constexpr int kTasksPerRun = 6;

std::string StoreDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/crash_test_store");
  return dir;
}

v1::Pipeline MakePipeline(int n) {
  v1::Pipeline p;
  p.set_name(absl::StrCat("crash-", n % 3));
  for (int i = 0; i < kTasksPerRun; ++i) {
    p.add_tasks()->set_name(absl::StrCat("t", i));
  }
  p.add_finally()->set_name("cleanup");
  return p;
}

// The child: writes until killed. Never returns.
[[noreturn]] void Writer(const std::string& dir, uint32_t seed) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::mt19937 rng(seed);
  auto store = RunStore::Open(dir);
  if (!store.ok()) {
    // Said, so a failure names its cause (seen once under ASan, on a loaded
    // machine, on the first iteration's fresh store).
    std::fprintf(stderr, "writer: opening the store: %s\n",
                 store.status().ToString().c_str());
    _exit(10);
  }
  std::vector<std::string> runs;
  std::unique_ptr<AttemptLogFile> log;
  for (int step = 0;; ++step) {
    if (runs.empty() || rng() % 20 == 0) {
      auto created =
          (*store)->CreateRun(MakePipeline(step), v1::Trigger(), "src", "");
      if (!created.ok()) _exit(11);
      runs.push_back(created->run_id);
    }
    const std::string& run = runs[rng() % runs.size()];
    std::vector<v1::RunEvent> batch;
    // Mostly small batches, sometimes big ones (a kill mid-transaction).
    int n = rng() % 10 == 0 ? 1 + rng() % 300 : 1 + rng() % 5;
    for (int i = 0; i < n; ++i) {
      v1::RunEvent& e = batch.emplace_back();
      switch (rng() % 4) {
        case 0:
          e.mutable_run_state()->set_state(
              static_cast<v1::RunState>(1 + rng() % 6));
          e.mutable_run_state()->set_reason(absl::StrCat("why ", rng() % 5));
          break;
        case 1:
        case 2: {
          auto* t = e.mutable_task_state();
          t->set_task(rng() % 8 == 0 ? "cleanup"
                                     : absl::StrCat("t", rng() % kTasksPerRun));
          t->set_state(static_cast<v1::TaskState>(1 + rng() % 8));
          t->set_attempt(rng() % 4);  // 0: no attempt (skipped, cached)
          t->set_exit_code(static_cast<int>(rng() % 3));
          t->set_reason(absl::StrCat("r", rng() % 7));
          break;
        }
        default:
          e.mutable_log()->set_task("t0");
          e.mutable_log()->set_text(std::string(rng() % 200, 'x'));
      }
    }
    if (!(*store)->AppendEvents(run, std::move(batch)).ok()) _exit(12);
    if (rng() % 10 == 0) {
      TaskOutputs outputs;
      outputs.cache_key = absl::StrCat("key", rng());
      outputs.outputs["app"] = absl::StrCat("sha256:", rng());
      if (!(*store)->SetTaskOutputs(run, "t1", outputs).ok()) _exit(13);
    }
    if (rng() % 10 == 0) {
      uint32_t attempt = 1 + rng() % 3;
      log = nullptr;
      auto opened = AttemptLogFile::Open(dir, run, "t2", attempt);
      if (!opened.ok()) _exit(14);
      log = std::move(*opened);
      if (!(*store)
               ->RecordAttemptLog(run, "t2", attempt, log->relative_path(),
                                  log->bytes())
               .ok()) {
        _exit(15);
      }
    }
    if (log != nullptr) {
      if (!log->AppendLine(LogStream::kStdout,
                           absl::StrCat("step ", step, " ",
                                        std::string(rng() % 100, 'y')),
                           absl::Now())
               .ok()) {
        _exit(16);
      }
      if (rng() % 4 == 0) log->Flush().IgnoreError();
    }
  }
}

// What the tables must say after replaying a run's events.
struct ExpectedTask {
  v1::TaskState state = v1::TASK_PENDING;
  uint32_t attempts = 0;
  int32_t exit_code = 0;
  std::string reason;
  bool started = false;
  bool finished = false;
};

bool Terminal(v1::TaskState s) {
  return s == v1::TASK_SUCCEEDED || s == v1::TASK_FAILED ||
         s == v1::TASK_SKIPPED || s == v1::TASK_CACHED ||
         s == v1::TASK_CANCELLED || s == v1::TASK_TIMED_OUT;
}

bool Terminal(v1::RunState s) {
  return s == v1::RUN_SUCCEEDED || s == v1::RUN_FAILED ||
         s == v1::RUN_CANCELLED || s == v1::RUN_TIMED_OUT;
}

// Checks one run against its events; returns the number of events.
uint64_t CheckRun(RunStore& store, Database& db, const v1::Run& run) {
  SCOPED_TRACE(run.id());
  auto pipeline = store.GetPipeline(run.id());
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  if (pipeline.ok()) {
    // The pipeline record as MakePipeline wrote it, whole.
    EXPECT_TRUE(absl::StartsWith(pipeline->name(), "crash-"))
        << pipeline->name();
    EXPECT_EQ(pipeline->name(), run.pipeline_name());
    EXPECT_EQ(pipeline->tasks_size(), kTasksPerRun);
    EXPECT_EQ(pipeline->finally_size(), 1);
    if (pipeline->finally_size() == 1) {
      EXPECT_EQ(pipeline->finally(0).name(), "cleanup");
    }
  }
  auto source = store.GetSourceDir(run.id());
  EXPECT_TRUE(source.ok() && *source == "src");
  EXPECT_EQ(run.tasks_size(), kTasksPerRun + 1);  // created whole or not
  for (const v1::TaskStatus& status : run.tasks()) {
    // Outputs are written whole (SetTaskOutputs is one transaction): a
    // cache key and its output, or neither; only t1 ever gets them.
    if (status.name() != "t1") {
      EXPECT_TRUE(status.cache_key().empty()) << status.name();
      EXPECT_EQ(status.outputs_size(), 0) << status.name();
      continue;
    }
    EXPECT_EQ(status.cache_key().empty(), status.outputs_size() == 0);
    if (!status.cache_key().empty()) {
      EXPECT_TRUE(absl::StartsWith(status.cache_key(), "key"));
      EXPECT_EQ(status.outputs_size(), 1);
      EXPECT_TRUE(status.outputs().count("app") == 1 &&
                  absl::StartsWith(status.outputs().at("app"), "sha256:"));
    }
  }
  // Every recorded log names a t2 attempt the writer opened, and the file
  // exists (it was created before it was recorded).
  auto logs = store.AttemptLogs(run.id(), "");
  EXPECT_TRUE(logs.ok()) << logs.status();
  if (logs.ok()) {
    for (const AttemptLog& log : *logs) {
      EXPECT_EQ(log.task, "t2");
      EXPECT_GE(log.attempt, 1u);
      EXPECT_LE(log.attempt, 3u);
      EXPECT_TRUE(std::filesystem::exists(
          absl::StrCat(store.store_dir(), "/", log.path)))
          << log.path;
    }
  }

  auto events = store.ReadEvents(run.id(), 0, 1 << 30);
  EXPECT_TRUE(events.ok()) << events.status();
  if (!events.ok()) return 0;
  auto last = store.LastSequence(run.id());
  EXPECT_EQ(*last, events->size());
  v1::RunState state = v1::RUN_QUEUED;
  std::string reason;
  std::map<std::string, ExpectedTask> tasks;
  std::map<std::pair<std::string, uint32_t>, v1::TaskStateChanged> attempts;
  for (size_t i = 0; i < events->size(); ++i) {
    const v1::RunEvent& e = (*events)[i];
    EXPECT_EQ(e.sequence(), i + 1) << "gap or disorder";
    EXPECT_EQ(e.run_id(), run.id());
    if (e.has_run_state()) {
      state = e.run_state().state();
      reason = e.run_state().reason();
    } else if (e.has_task_state()) {
      const v1::TaskStateChanged& c = e.task_state();
      ExpectedTask& t = tasks[c.task()];
      t.state = c.state();
      t.attempts = std::max(t.attempts, c.attempt());
      t.exit_code = c.exit_code();
      t.reason = c.reason();
      t.started |= c.state() == v1::TASK_RUNNING;
      t.finished = Terminal(c.state());
      if (c.attempt() > 0) attempts[{c.task(), c.attempt()}] = c;
    }
  }
  EXPECT_EQ(run.state(), state);
  EXPECT_EQ(run.reason(), reason);
  EXPECT_EQ(run.has_finished(), Terminal(state));
  for (const v1::TaskStatus& status : run.tasks()) {
    SCOPED_TRACE(status.name());
    ExpectedTask want = tasks[status.name()];
    EXPECT_EQ(status.state(), want.state);
    EXPECT_EQ(status.attempts(), want.attempts);
    EXPECT_EQ(status.exit_code(), want.exit_code);
    EXPECT_EQ(status.reason(), want.reason);
    EXPECT_EQ(status.has_started(), want.started);
    EXPECT_EQ(status.has_finished(), want.finished);
  }
  // Attempt rows that events touched carry the last event's state.
  auto rows = db.Prepare(
      "SELECT task, attempt, state, exit_code, reason FROM attempts"
      " WHERE run_id = ?1 AND (state != 1 OR reason != '')");
  EXPECT_TRUE(rows.ok());
  rows->BindText(1, run.id());
  size_t seen = 0;
  while (*rows->Step()) {
    auto it =
        attempts.find({rows->Text(0), static_cast<uint32_t>(rows->Int(1))});
    if (it == attempts.end()) {
      ADD_FAILURE() << "attempt row without event: " << rows->Text(0) << "."
                    << rows->Int(1);
      continue;
    }
    ++seen;
    EXPECT_EQ(rows->Int(2), it->second.state());
    EXPECT_EQ(rows->Int(3), it->second.exit_code());
    EXPECT_EQ(rows->Text(4), it->second.reason());
  }
  // Every attempt an event named has a row (PENDING events included).
  size_t pending_only = 0;
  for (const auto& [key, change] : attempts) {
    pending_only +=
        change.state() == v1::TASK_PENDING && change.reason().empty();
  }
  EXPECT_EQ(seen + pending_only, attempts.size());
  return events->size();
}

void CheckLogs(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/logs")) return;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(dir + "/logs", ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path());
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::vector<std::string> lines = absl::StrSplit(buffer.str(), '\n');
    lines.pop_back();  // after the last '\n': empty or a torn line
    for (const std::string& line : lines) {
      EXPECT_TRUE(ParseLogFileLine(line).ok()) << entry.path() << ": " << line;
    }
  }
}

TEST(RunStoreCrashTest, KillNineAtRandomMomentsLeavesNothingTorn) {
  const std::string dir = StoreDir();
  std::filesystem::remove_all(dir);
  // Every random choice follows from one seed, printed so a failure can be
  // replayed: KILN_TEST_SEED=N reruns with it.
  uint32_t seed = std::random_device{}();
  if (const char* env = std::getenv("KILN_TEST_SEED"); env != nullptr) {
    seed = static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  std::printf("crash_test seed: %u (rerun with KILN_TEST_SEED=%u)\n", seed,
              seed);
  SCOPED_TRACE(absl::StrCat("seed ", seed, " (KILN_TEST_SEED)"));
  std::mt19937 rng(seed);
  uint64_t previous_events = 0;
  int progressed = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(200);
  for (int iteration = 0; iteration < kIterations && absl::Now() < give_up;
       ++iteration) {
    SCOPED_TRACE(absl::StrCat("iteration ", iteration));
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) Writer(dir, static_cast<uint32_t>(rng()));
    // Kill once the writer has committed something new (an event seen in the
    // store, not a guessed delay: a loaded machine may be slow to start it),
    // then a seeded random moment later.
    {
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      uint64_t seen = 0;
      while (absl::Now() < deadline) {
        if (std::filesystem::exists(dir + "/runs.db")) {
          auto reader = Database::Open(dir + "/runs.db");
          if (reader.ok()) {
            auto n = (*reader)->QueryInt("SELECT count(*) FROM events");
            if (n.ok()) seen = static_cast<uint64_t>(*n);
          }
        }
        if (seen > previous_events) break;
        absl::SleepFor(absl::Milliseconds(5));
      }
      EXPECT_GT(seen, previous_events) << "the writer made no progress";
    }
    absl::SleepFor(absl::Milliseconds(rng() % 250));
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    // Killed by us, not an early exit: an exit code names the failed step.
    ASSERT_TRUE(WIFSIGNALED(status))
        << "writer exited early with " << WEXITSTATUS(status);

    {
      auto db = Database::Open(dir + "/runs.db");
      ASSERT_TRUE(db.ok()) << db.status();
      auto check = (*db)->Prepare("PRAGMA integrity_check");
      ASSERT_TRUE(check.ok());
      ASSERT_TRUE(*check->Step());
      EXPECT_EQ(check->Text(0), "ok");
    }
    auto db = Database::Open(dir + "/runs.db");
    ASSERT_TRUE(db.ok());
    {
      auto fk = (*db)->Prepare("PRAGMA foreign_key_check");
      ASSERT_TRUE(fk.ok());
      EXPECT_FALSE(*fk->Step()) << "dangling reference in " << fk->Text(0);
    }
    auto store = RunStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    uint64_t events = 0;
    int runs = 0;
    std::string token;
    do {
      auto page = (*store)->ListRuns({}, 200, token);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const v1::Run& run : page->runs) {
        events += CheckRun(**store, **db, run);
        ++runs;
      }
      token = page->next_page_token;
    } while (!token.empty());
    CheckLogs(dir);
    if (::testing::Test::HasFailure()) return;
    EXPECT_GE(events, previous_events) << "committed events were lost";
    progressed += events > previous_events;
    previous_events = events;
    std::fprintf(stderr, "iteration %d: %d runs, %llu events\n", iteration,
                 runs, static_cast<unsigned long long>(events));
  }
  // The writer must have got somewhere in most iterations, or the kills
  // tested nothing.
  EXPECT_GE(progressed, kIterations / 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln::store
