// RunStore's event stream (run_store_events.cc): sequences, the state each
// event applies, cache hits recorded with their events, concurrent
// appenders, waiting for events.
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/run_store.h"
#include "engine/store/run_store_test_util.h"
#include "engine/store/sqlite.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST_F(RunStoreTest, EventsGetContiguousSequencesAndApplyState) {
  std::string id = NewRun();
  auto appended = store_->AppendEvents(
      id, {RunState(v1::RUN_RUNNING), TaskState("a", v1::TASK_RUNNING, 1),
           Log("a", "hello")});
  ASSERT_TRUE(appended.ok()) << appended.status();
  ASSERT_EQ(appended->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*appended)[i].sequence(), i + 1);
    EXPECT_EQ((*appended)[i].run_id(), id);
    EXPECT_TRUE((*appended)[i].has_time());
  }
  auto run = store_->GetRun(id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_RUNNING);
  EXPECT_EQ(run->tasks(0).state(), v1::TASK_RUNNING);
  EXPECT_EQ(run->tasks(0).attempts(), 1u);
  EXPECT_TRUE(run->tasks(0).has_started());
  EXPECT_FALSE(run->tasks(0).has_finished());

  ASSERT_TRUE(
      store_
          ->AppendEvents(id, {TaskState("a", v1::TASK_FAILED, 1, 2, "exit 2"),
                              TaskState("a", v1::TASK_RUNNING, 2),
                              TaskState("a", v1::TASK_SUCCEEDED, 2),
                              TaskState("b", v1::TASK_CACHED, 0, 0, "key abc"),
                              TaskState("z", v1::TASK_SKIPPED, 0, 0, "when"),
                              RunState(v1::RUN_SUCCEEDED, "all done")})
          .ok());
  run = store_->GetRun(id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_SUCCEEDED);
  EXPECT_EQ(run->reason(), "all done");
  EXPECT_TRUE(run->has_finished());
  EXPECT_EQ(run->tasks(0).state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(run->tasks(0).attempts(), 2u);
  EXPECT_EQ(run->tasks(0).exit_code(), 0);
  EXPECT_TRUE(run->tasks(0).has_finished());
  EXPECT_EQ(run->tasks(1).state(), v1::TASK_CACHED);
  EXPECT_EQ(run->tasks(1).reason(), "key abc");
  EXPECT_EQ(run->tasks(1).attempts(), 0u);
  EXPECT_EQ(run->tasks(2).state(), v1::TASK_SKIPPED);

  auto events = store_->ReadEvents(id, 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 9u);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence(), i + 1);
  }
  EXPECT_EQ((*events)[3].task_state().reason(), "exit 2");
  auto tail = store_->ReadEvents(id, 7, 10);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[0].sequence(), 8u);
  auto limited = store_->ReadEvents(id, 0, 4);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 4u);
  EXPECT_EQ(*store_->LastSequence(id), 9u);
  EXPECT_TRUE(store_->ReadEvents(id, 9, 10)->empty());
}

TEST_F(RunStoreTest, AFinishedRunCanRunAgain) {
  std::string id = NewRun();
  ASSERT_TRUE(store_->AppendEvents(id, {RunState(v1::RUN_FAILED)}).ok());
  EXPECT_TRUE(store_->GetRun(id)->has_finished());
  ASSERT_TRUE(store_->AppendEvents(id, {RunState(v1::RUN_RUNNING)}).ok());
  EXPECT_FALSE(store_->GetRun(id)->has_finished());
}

TEST_F(RunStoreTest, TaskOutsideThePipelineIsAdded) {
  std::string id = NewRun();
  ASSERT_TRUE(
      store_->AppendEvents(id, {TaskState("extra", v1::TASK_RUNNING, 1)}).ok());
  auto run = store_->GetRun(id);
  ASSERT_EQ(run->tasks_size(), 4);
  EXPECT_EQ(run->tasks(3).name(), "extra");

  // A hit of a task the pipeline did not list: its row is made with the
  // hit's cache key and values.
  v1::RunEvent hit = TaskState("late", v1::TASK_CACHED, 1);
  hit.mutable_task_state()->set_cache_key("kl");
  (*hit.mutable_task_state()->mutable_outputs())["bin"] = "sha256:bb";
  ASSERT_TRUE(store_->AppendEvents(id, {hit}).ok());
  run = store_->GetRun(id);
  ASSERT_EQ(run->tasks_size(), 5);
  EXPECT_EQ(run->tasks(4).name(), "late");
  EXPECT_EQ(run->tasks(4).state(), v1::TASK_CACHED);
  EXPECT_EQ(run->tasks(4).cache_key(), "kl");
  EXPECT_THAT(run->tasks(4).outputs(),
              UnorderedElementsAre(Pair("bin", "sha256:bb")));
}

TEST_F(RunStoreTest, InvalidEventsAreRejectedWhole) {
  std::string id = NewRun();
  v1::RunEvent foreign = Log("a", "x");
  foreign.set_run_id("r-other");
  for (const v1::RunEvent& bad :
       {v1::RunEvent(), foreign, TaskState("", v1::TASK_RUNNING, 1),
        TaskState("a", v1::TASK_STATE_UNSPECIFIED, 1),
        RunState(v1::RUN_STATE_UNSPECIFIED)}) {
    auto result = store_->AppendEvents(id, {Log("a", "fine"), bad});
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.DebugString();
  }
  EXPECT_EQ(*store_->LastSequence(id), 0u);
}

TEST_F(RunStoreTest, KeepsTheCallersEventTime) {
  std::string id = NewRun();
  v1::RunEvent e = TaskState("a", v1::TASK_SUCCEEDED, 1);
  e.mutable_time()->set_seconds(1700000000);
  e.mutable_time()->set_nanos(123456000);
  auto appended = store_->AppendEvents(id, {e});
  ASSERT_TRUE(appended.ok());
  EXPECT_EQ((*appended)[0].time().seconds(), 1700000000);
  auto run = store_->GetRun(id);
  EXPECT_EQ(run->tasks(0).finished().seconds(), 1700000000);
  EXPECT_EQ(run->tasks(0).finished().nanos(), 123456000);
}

// The task and attempt rows of a run, without its id, one line per row.
std::vector<std::string> TaskAndAttemptRows(const std::string& dir,
                                            const std::string& run_id) {
  std::vector<std::string> rows;
  auto db = Database::Open(dir + "/runs.db");
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return rows;
  const std::pair<const char*, int> queries[] = {
      {"SELECT name, position, state, attempts, exit_code, reason,"
       " COALESCE(started_us, -1), COALESCE(finished_us, -1), error_code,"
       " cache_key FROM tasks WHERE run_id = ?1 ORDER BY name",
       10},
      {"SELECT task, attempt, state, exit_code, reason,"
       " COALESCE(started_us, -1), COALESCE(finished_us, -1) FROM attempts"
       " WHERE run_id = ?1 ORDER BY task, attempt",
       7}};
  for (const auto& [sql, columns] : queries) {
    auto stmt = (*db)->Prepare(sql);
    EXPECT_TRUE(stmt.ok()) << stmt.status();
    if (!stmt.ok()) return rows;
    stmt->BindText(1, run_id);
    while (*stmt->Step()) {
      std::string row;
      for (int c = 0; c < columns; ++c)
        absl::StrAppend(&row, stmt->Text(c), "|");
      rows.push_back(row);
    }
  }
  return rows;
}

// A batch applies a task's RUNNING and the event ending that attempt right
// after it together (fewer statements for every cache hit); the rows end
// exactly as applying them one call at a time leaves them.
TEST_F(RunStoreTest, ARunningEventAppliedWithItsEndLeavesTheSameRows) {
  auto at = [](v1::RunEvent e, int64_t us) {
    *e.mutable_time() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(us);
    return e;
  };
  v1::RunEvent hit = TaskState("a", v1::TASK_CACHED, 1, 0, "cache hit");
  hit.mutable_task_state()->set_cache_key("ka");
  (*hit.mutable_task_state()->mutable_outputs())["app"] = "sha256:aa";
  std::vector<v1::RunEvent> events = {
      at(TaskState("b", v1::TASK_RUNNING, 1), 5),
      at(TaskState("b", v1::TASK_FAILED, 1, 3, "exit 3"), 6),
      at(TaskState("a", v1::TASK_RUNNING, 1), 10),
      at(hit, 20),
      at(TaskState("b", v1::TASK_RUNNING, 2), 30),
      at(TaskState("b", v1::TASK_SUCCEEDED, 2), 40),
      at(TaskState("gen", v1::TASK_RUNNING, 1), 50),  // not in the pipeline
      at(TaskState("gen", v1::TASK_SUCCEEDED, 1), 60),
      at(TaskState("z", v1::TASK_RUNNING, 1), 70),  // left running
  };
  std::string batched = NewRun();
  ASSERT_TRUE(store_->AppendEvents(batched, events).ok());
  std::string one_by_one = NewRun();
  for (const v1::RunEvent& e : events) {
    ASSERT_TRUE(store_->AppendEvents(one_by_one, {e}).ok());
  }
  std::vector<std::string> want = TaskAndAttemptRows(dir_, one_by_one);
  ASSERT_EQ(want.size(), 4u + 5u) << "a, b, gen, z; a1, b1, b2, gen1, z1";
  EXPECT_EQ(TaskAndAttemptRows(dir_, batched), want);
  EXPECT_EQ(*store_->LastSequence(batched), events.size());
}

// A TASK_CACHED event is the record of a hit: its key, outputs and results
// are committed with it (and with its TASK_RUNNING) in one transaction.
TEST_F(RunStoreTest, ACachedEventRecordsTheHitWithItself) {
  std::string id = NewRun();
  v1::RunEvent a_hit = TaskState("a", v1::TASK_CACHED, 1);
  a_hit.mutable_task_state()->set_cache_key("ka");
  (*a_hit.mutable_task_state()->mutable_outputs())["app"] = "sha256:aa";
  v1::RunEvent b_hit = TaskState("b", v1::TASK_CACHED, 3);
  b_hit.mutable_task_state()->set_cache_key("kb");
  (*b_hit.mutable_task_state()->mutable_results())["r"] = "v";
  ASSERT_TRUE(
      store_
          ->AppendEvents(id, {TaskState("a", v1::TASK_RUNNING, 1), a_hit,
                              TaskState("b", v1::TASK_RUNNING, 3), b_hit})
          .ok());
  auto reopened = RunStore::Open(dir_);  // durable, as a resumer sees it
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto run = (*reopened)->GetRun(id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->tasks(0).state(), v1::TASK_CACHED);
  EXPECT_EQ(run->tasks(0).attempts(), 1u);
  EXPECT_EQ(run->tasks(0).cache_key(), "ka");
  EXPECT_THAT(run->tasks(0).outputs(),
              UnorderedElementsAre(Pair("app", "sha256:aa")));
  EXPECT_TRUE(run->tasks(0).results().empty());
  EXPECT_EQ(run->tasks(1).state(), v1::TASK_CACHED);
  EXPECT_EQ(run->tasks(1).attempts(), 3u);
  EXPECT_EQ(run->tasks(1).cache_key(), "kb");
  EXPECT_THAT(run->tasks(1).results(), UnorderedElementsAre(Pair("r", "v")));
  EXPECT_EQ(*(*reopened)->LastSequence(id), 4u);

  // A later hit of the same task (a resumed run's) replaces the outputs
  // and never lowers the attempts count.
  v1::RunEvent again = TaskState("a", v1::TASK_CACHED, 1);
  again.mutable_task_state()->set_cache_key("ka2");
  (*again.mutable_task_state()->mutable_outputs())["lib"] = "sha256:dd";
  ASSERT_TRUE(
      store_->AppendEvents(id, {again, TaskState("b", v1::TASK_CACHED, 2)})
          .ok());
  run = store_->GetRun(id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->tasks(0).cache_key(), "ka2");
  EXPECT_THAT(run->tasks(0).outputs(),
              UnorderedElementsAre(Pair("lib", "sha256:dd")));
  EXPECT_EQ(run->tasks(1).attempts(), 3u);
}

TEST_F(RunStoreTest, ConcurrentAppendersGetContiguousSequences) {
  std::string id = NewRun();
  constexpr int kThreads = 8, kBatches = 40;
  std::vector<std::thread> threads;
  std::vector<std::vector<uint64_t>> got(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<v1::RunEvent> batch;
        for (int i = 0; i <= b % 3; ++i) {
          batch.push_back(Log("a", absl::StrCat(t, "/", b, "/", i)));
        }
        auto appended = store_->AppendEvents(id, batch);
        ASSERT_TRUE(appended.ok()) << appended.status();
        // One batch is one contiguous block.
        for (size_t i = 1; i < appended->size(); ++i) {
          EXPECT_EQ((*appended)[i].sequence(), (*appended)[0].sequence() + i);
        }
        for (const auto& e : *appended) got[t].push_back(e.sequence());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (const auto& v : got) all.insert(v.begin(), v.end());
  uint64_t total = 0;
  for (const auto& v : got) total += v.size();
  ASSERT_EQ(all.size(), total);  // no duplicates
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), total);  // no gaps
  auto events = store_->ReadEvents(id, 0, 100000);
  ASSERT_EQ(events->size(), total);
}

TEST_F(RunStoreTest, TwoProcessesAppendToOneStore) {
  std::string id = NewRun();
  constexpr int kPerProcess = 300;
  // The parent's connection must not cross fork(); the child opens its own.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = RunStore::Open(dir_);
    if (!store.ok()) _exit(10);
    for (int i = 0; i < kPerProcess; ++i) {
      if (!(*store)->AppendEvents(id, {Log("a", "child")}).ok()) _exit(11);
    }
    _exit(0);
  }
  for (int i = 0; i < kPerProcess; ++i) {
    ASSERT_TRUE(store_->AppendEvents(id, {Log("b", "parent")}).ok());
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto events = store_->ReadEvents(id, 0, 10000);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u * kPerProcess);
  int from_child = 0;
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence(), i + 1);
    from_child += (*events)[i].log().text() == "child";
  }
  EXPECT_EQ(from_child, kPerProcess);
}

TEST_F(RunStoreTest, WaitForEventsWakesOnAppend) {
  std::string id = NewRun();
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(store_->AppendEvents(id, {Log("a", "x")}).ok());
  });
  // A long poll interval: the in-process wake-up must be what ends the wait.
  absl::Time start = absl::Now();
  auto last =
      store_->WaitForEvents(id, 0, absl::Seconds(30), absl::Seconds(30));
  writer.join();
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, 1u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  // Already past: returns at once.
  EXPECT_EQ(*store_->WaitForEvents(id, 0, absl::ZeroDuration()), 1u);
}

TEST_F(RunStoreTest, WaitForEventsTimesOut) {
  std::string id = NewRun();
  auto last = store_->WaitForEvents(id, 0, absl::Milliseconds(30),
                                    absl::Milliseconds(5));
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 0u);
  EXPECT_EQ(
      store_->WaitForEvents("r-nope", 0, absl::Milliseconds(1)).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(RunStoreTest, WaitForEventsSeesOtherConnectionsByPolling) {
  std::string id = NewRun();
  auto other = RunStore::Open(dir_);
  ASSERT_TRUE(other.ok());
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE((*other)->AppendEvents(id, {Log("a", "x")}).ok());
  });
  auto last =
      store_->WaitForEvents(id, 0, absl::Seconds(30), absl::Milliseconds(10));
  writer.join();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 1u);
}

}  // namespace
}  // namespace kiln::store
