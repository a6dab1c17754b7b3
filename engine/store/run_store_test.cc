#include "engine/store/run_store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/run_id.h"
#include "engine/store/run_lease.h"
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

std::string FreshDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/run_store_test/",
                                 info->test_suite_name(), ".", info->name());
  std::filesystem::remove_all(dir);
  return dir;
}

v1::Pipeline MakePipeline(const std::string& name,
                          std::vector<std::string> tasks,
                          std::vector<std::string> finally = {}) {
  v1::Pipeline p;
  p.set_name(name);
  for (const auto& t : tasks) p.add_tasks()->set_name(t);
  for (const auto& t : finally) p.add_finally()->set_name(t);
  return p;
}

v1::RunEvent RunState(v1::RunState state, const std::string& reason = "") {
  v1::RunEvent e;
  e.mutable_run_state()->set_state(state);
  e.mutable_run_state()->set_reason(reason);
  return e;
}

v1::RunEvent TaskState(const std::string& task, v1::TaskState state,
                       uint32_t attempt, int exit_code = 0,
                       const std::string& reason = "") {
  v1::RunEvent e;
  auto* t = e.mutable_task_state();
  t->set_task(task);
  t->set_state(state);
  t->set_attempt(attempt);
  t->set_exit_code(exit_code);
  t->set_reason(reason);
  return e;
}

v1::RunEvent Log(const std::string& task, const std::string& text) {
  v1::RunEvent e;
  e.mutable_log()->set_task(task);
  e.mutable_log()->set_text(text);
  return e;
}

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    auto store = RunStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::string NewRun(const std::string& pipeline = "demo",
                     const std::string& key = "") {
    auto created = store_->CreateRun(MakePipeline(pipeline, {"a", "b"}, {"z"}),
                                     v1::Trigger(), "src", key);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->run_id : "";
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(RunStoreTest, CreateAndGet) {
  v1::Trigger trigger;
  trigger.set_branch("feature/x");
  (*trigger.mutable_params())["registry"] = "localhost:5000";
  auto created =
      store_->CreateRun(MakePipeline("kcow", {"build", "test"}, {"cleanup"}),
                        trigger, "checkout", "");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created);
  EXPECT_TRUE(IsValidRunId(created->run_id)) << created->run_id;

  auto run = store_->GetRun(created->run_id);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->id(), created->run_id);
  EXPECT_EQ(run->pipeline_name(), "kcow");
  EXPECT_EQ(run->state(), v1::RUN_QUEUED);
  EXPECT_EQ(run->trigger().branch(), "feature/x");
  EXPECT_EQ(run->trigger().params().at("registry"), "localhost:5000");
  EXPECT_GT(run->created().seconds(), 0);
  EXPECT_FALSE(run->has_finished());
  ASSERT_EQ(run->tasks_size(), 3);
  EXPECT_EQ(run->tasks(0).name(), "build");
  EXPECT_EQ(run->tasks(1).name(), "test");
  EXPECT_EQ(run->tasks(2).name(), "cleanup");
  for (const auto& t : run->tasks()) EXPECT_EQ(t.state(), v1::TASK_PENDING);

  auto pipeline = store_->GetPipeline(created->run_id);
  ASSERT_TRUE(pipeline.ok());
  EXPECT_EQ(pipeline->name(), "kcow");
  EXPECT_EQ(pipeline->tasks_size(), 2);
  EXPECT_EQ(*store_->GetSourceDir(created->run_id), "checkout");
  EXPECT_EQ(*store_->LastSequence(created->run_id), 0u);
}

// ReserveAttempt makes an attempt number durable before any event: the
// task's attempts count and the attempt's row, idempotently; the later
// TASK_RUNNING event of the same attempt changes neither the count nor
// the row's identity.
TEST_F(RunStoreTest, ReserveAttemptIsDurableBeforeAnyEvent) {
  std::string id = NewRun();
  ASSERT_TRUE(store_->ReserveAttempt(id, "a", 1).ok());
  ASSERT_TRUE(store_->ReserveAttempt(id, "a", 1).ok());  // idempotent
  {
    auto reopened = RunStore::Open(dir_);  // as a resumer would see it
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    auto run = (*reopened)->GetRun(id);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->tasks(0).name(), "a");
    EXPECT_EQ(run->tasks(0).attempts(), 1u);
    EXPECT_EQ(run->tasks(0).state(), v1::TASK_PENDING);
    EXPECT_EQ(run->tasks(1).attempts(), 0u);
    EXPECT_EQ(*(*reopened)->LastSequence(id), 0u) << "no event was written";
  }
  ASSERT_TRUE(
      store_->AppendEvents(id, {TaskState("a", v1::TASK_RUNNING, 1)}).ok());
  ASSERT_TRUE(store_->ReserveAttempt(id, "a", 2).ok());
  auto run = store_->GetRun(id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->tasks(0).attempts(), 2u);
  EXPECT_EQ(run->tasks(0).state(), v1::TASK_RUNNING);
  // A lower number never lowers the count.
  ASSERT_TRUE(store_->ReserveAttempt(id, "a", 1).ok());
  EXPECT_EQ(store_->GetRun(id)->tasks(0).attempts(), 2u);
  // A task the pipeline did not list is added, as events add it.
  ASSERT_TRUE(store_->ReserveAttempt(id, "extra", 1).ok());
  run = store_->GetRun(id);
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->tasks_size(), 4);
  EXPECT_EQ(run->tasks(3).name(), "extra");
  EXPECT_EQ(run->tasks(3).attempts(), 1u);

  EXPECT_EQ(store_->ReserveAttempt(id, "a", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ReserveAttempt("r-nope", "a", 1).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RunStoreTest, UnknownRunIsNotFound) {
  EXPECT_EQ(store_->GetRun("r-nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->AppendEvents("r-nope", {Log("a", "x")}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ReadEvents("r-nope", 0, 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetPipeline("r-nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->AttemptLogs("r-nope", "").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RunStoreTest, RejectsBadPipelines) {
  EXPECT_EQ(
      store_->CreateRun(MakePipeline("", {"a"}), {}, "", "").status().code(),
      absl::StatusCode::kInvalidArgument);
  auto dup =
      store_->CreateRun(MakePipeline("p", {"a", "b"}, {"a"}), {}, "", "");
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dup.status().message(), HasSubstr("task a"));
}

TEST_F(RunStoreTest, IdempotencyKeyReturnsTheExistingRun) {
  std::string first = NewRun("demo", "push-1234");
  auto again =
      store_->CreateRun(MakePipeline("demo", {"a"}), {}, "", "push-1234");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->run_id, first);
  std::string other = NewRun("demo", "push-5678");
  EXPECT_NE(other, first);
  // Empty keys never collide.
  EXPECT_NE(NewRun("demo", ""), NewRun("demo", ""));
  auto page = store_->ListRuns({}, 100, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->runs.size(), 4u);
}

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

TEST_F(RunStoreTest, ListFiltersAndPaginates) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(NewRun(i % 2 ? "odd" : "even"));
  ASSERT_TRUE(store_->AppendEvents(ids[2], {RunState(v1::RUN_FAILED)}).ok());
  ASSERT_TRUE(store_->AppendEvents(ids[4], {RunState(v1::RUN_FAILED)}).ok());

  // All runs, newest first, three pages of 3, 3, 1.
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->ListRuns({}, 3, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& run : page->runs) {
      seen.push_back(run.id());
      EXPECT_EQ(run.tasks_size(), 3);
    }
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, newest_first);

  RunFilter failed;
  failed.state = v1::RUN_FAILED;
  auto page = store_->ListRuns(failed, 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->runs.size(), 2u);
  EXPECT_EQ(page->runs[0].id(), ids[4]);
  EXPECT_TRUE(page->next_page_token.empty());

  RunFilter odd;
  odd.pipeline_name = "odd";
  page = store_->ListRuns(odd, 10, "");
  EXPECT_EQ(page->runs.size(), 3u);
  odd.state = v1::RUN_FAILED;
  EXPECT_TRUE(store_->ListRuns(odd, 10, "")->runs.empty());

  EXPECT_EQ(store_->ListRuns({}, 10, "bogus'token").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RunStoreTest, LastSucceededRevisionReadsTheNewestMatchingTrigger) {
  auto run_with = [&](const std::string& pipeline, const std::string& branch,
                      const std::string& revision, v1::RunState state) {
    v1::Trigger trigger;
    trigger.set_branch(branch);
    trigger.set_revision(revision);
    auto created = store_->CreateRun(MakePipeline(pipeline, {"a"}, {}), trigger,
                                     "src", "");
    EXPECT_TRUE(created.ok()) << created.status();
    EXPECT_TRUE(store_->AppendEvents(created->run_id, {RunState(state)}).ok());
  };
  EXPECT_EQ(*store_->LastSucceededRevision("demo", "main", 1000), "");
  run_with("demo", "main", "r1", v1::RUN_SUCCEEDED);
  run_with("demo", "main", "r2", v1::RUN_SUCCEEDED);
  run_with("demo", "main", "r3", v1::RUN_FAILED);      // not successful
  run_with("demo", "topic", "t1", v1::RUN_SUCCEEDED);  // another branch
  run_with("other", "main", "o1", v1::RUN_SUCCEEDED);  // another pipeline
  run_with("demo", "main", "", v1::RUN_SUCCEEDED);     // no revision
  EXPECT_EQ(*store_->LastSucceededRevision("demo", "main", 1000), "r2");
  EXPECT_EQ(*store_->LastSucceededRevision("demo", "topic", 1000), "t1");
  EXPECT_EQ(*store_->LastSucceededRevision("other", "main", 1000), "o1");
  EXPECT_EQ(*store_->LastSucceededRevision("demo", "none", 1000), "");
  // Only the newest max_runs successful runs are looked at: the two newest
  // are t1's and the one without a revision.
  EXPECT_EQ(*store_->LastSucceededRevision("demo", "main", 2), "");
  EXPECT_EQ(*store_->LastSucceededRevision("demo", "main", 3), "r2");
}

TEST_F(RunStoreTest, UnfinishedRunsAreQueuedOrRunning) {
  std::string queued = NewRun();
  std::string running = NewRun();
  std::string done = NewRun();
  ASSERT_TRUE(store_->AppendEvents(running, {RunState(v1::RUN_RUNNING)}).ok());
  ASSERT_TRUE(store_->AppendEvents(done, {RunState(v1::RUN_CANCELLED)}).ok());
  auto unfinished = store_->UnfinishedRuns();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_THAT(*unfinished, ElementsAre(queued, running));
}

// An owner records the final state, then gives up the lease. A reader
// that read the run unfinished just before and probes the lease just
// after must not call the run's owner gone: the run finished.
TEST_F(RunStoreTest, ARunFinishingWhileItIsReadIsNeverOwnerGone) {
  for (int i = 0; i < 200; ++i) {
    std::string id = NewRun();
    auto lease = RunLease::Acquire(dir_, id);
    ASSERT_TRUE(lease.ok()) << lease.status();
    ASSERT_TRUE(store_->AppendEvents(id, {RunState(v1::RUN_RUNNING)}).ok());
    std::atomic<bool> started{false};
    std::string wrong;
    std::thread reader([&] {
      while (true) {
        absl::StatusOr<v1::Run> run = store_->GetRun(id);
        started = true;
        if (!run.ok()) {
          wrong = run.status().ToString();
          return;
        }
        if (run->owner_gone()) {
          wrong = absl::StrCat("owner gone in state ", run->state());
          return;
        }
        if (run->state() == v1::RUN_SUCCEEDED) return;
      }
    });
    while (!started) std::this_thread::yield();
    ASSERT_TRUE(store_->AppendEvents(id, {RunState(v1::RUN_SUCCEEDED)}).ok());
    (*lease)->ReleaseFinished();
    reader.join();
    ASSERT_EQ(wrong, "") << "iteration " << i;
  }
}

TEST_F(RunStoreTest, TaskOutputsReplaceEarlierOnes) {
  std::string id = NewRun();
  TaskOutputs first;
  first.cache_key = "k1";
  first.outputs["app"] = "sha256:aa";
  first.results["digest"] = "sha256:bb";
  ASSERT_TRUE(store_->SetTaskOutputs(id, "a", first).ok());
  TaskOutputs second;
  second.cache_key = "k2";
  second.outputs["app"] = "sha256:cc";
  second.outputs["lib"] = "sha256:dd";
  ASSERT_TRUE(store_->SetTaskOutputs(id, "a", second).ok());
  auto run = store_->GetRun(id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->tasks(0).cache_key(), "k2");
  EXPECT_THAT(
      run->tasks(0).outputs(),
      UnorderedElementsAre(Pair("app", "sha256:cc"), Pair("lib", "sha256:dd")));
  EXPECT_TRUE(run->tasks(0).results().empty());
  EXPECT_EQ(store_->SetTaskOutputs(id, "nope", first).code(),
            absl::StatusCode::kNotFound);
}

// A TASK_CACHED event is the record of a hit: its key, outputs and results
// are committed with it (and with its TASK_RUNNING) in one transaction.
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

TEST_F(RunStoreTest, AttemptLogsInPipelineOrder) {
  std::string id = NewRun();
  ASSERT_TRUE(store_->RecordAttemptLog(id, "z", 1, "logs/z.1", 5).ok());
  ASSERT_TRUE(
      store_->AppendEvents(id, {TaskState("b", v1::TASK_RUNNING, 2)}).ok());
  ASSERT_TRUE(store_->RecordAttemptLog(id, "b", 2, "logs/b.2", 20).ok());
  ASSERT_TRUE(store_->RecordAttemptLog(id, "b", 1, "logs/b.1", 10).ok());
  ASSERT_TRUE(store_->RecordAttemptLog(id, "a", 1, "logs/a.1", 1).ok());
  ASSERT_TRUE(store_->RecordAttemptLog(id, "a", 1, "logs/a.1", 7).ok());
  auto logs = store_->AttemptLogs(id, "");
  ASSERT_TRUE(logs.ok()) << logs.status();
  std::vector<std::string> order;
  for (const auto& log : *logs) {
    order.push_back(absl::StrCat(log.task, ".", log.attempt, "=", log.bytes));
  }
  EXPECT_THAT(order, ElementsAre("a.1=7", "b.1=10", "b.2=20", "z.1=5"));
  auto b = store_->AttemptLogs(id, "b");
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[1].path, "logs/b.2");
  // The event's state survived recording the log.
  EXPECT_EQ(store_->GetRun(id)->tasks(1).state(), v1::TASK_RUNNING);
  EXPECT_EQ(store_->RecordAttemptLog(id, "nope", 1, "x", 1).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->RecordAttemptLog(id, "a", 0, "x", 1).code(),
            absl::StatusCode::kInvalidArgument);
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

TEST_F(RunStoreTest, ReopenKeepsEverything) {
  std::string id = NewRun();
  ASSERT_TRUE(store_->AppendEvents(id, {RunState(v1::RUN_RUNNING)}).ok());
  store_.reset();
  auto reopened = RunStore::Open(dir_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->GetRun(id)->state(), v1::RUN_RUNNING);
  EXPECT_EQ(*(*reopened)->LastSequence(id), 1u);
}

TEST(RunStoreOpenTest, RefusesAStoreFromANewerKiln) {
  std::string dir = FreshDir();
  {
    auto store = RunStore::Open(dir);
    ASSERT_TRUE(store.ok());
  }
  {
    auto db = Database::Open(dir + "/runs.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec(absl::StrCat("PRAGMA user_version = ",
                                        RunStore::SchemaVersion() + 1))
                    .ok());
  }
  auto store = RunStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("newer kiln"));
}

TEST(RunStoreOpenTest, MigratesAnEmptyVersionZeroFile) {
  std::string dir = FreshDir();
  std::filesystem::create_directories(dir);
  {
    std::FILE* f = std::fopen((dir + "/runs.db").c_str(), "w");
    std::fclose(f);
  }
  auto store = RunStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto db = Database::Open(dir + "/runs.db");
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA user_version"), RunStore::SchemaVersion());
}

TEST(RunIdTest, ShapeAndOrder) {
  absl::Time t = absl::FromUnixMicros(1700000000123456);
  std::string id = NewRunId(t);
  EXPECT_TRUE(IsValidRunId(id)) << id;
  EXPECT_EQ(id.substr(0, 24), "r20231114-221320-123456-");
  EXPECT_LT(id, NewRunId(t + absl::Microseconds(1)));
  EXPECT_NE(NewRunId(t), NewRunId(t));
  EXPECT_FALSE(IsValidRunId(""));
  EXPECT_FALSE(IsValidRunId("r20231114-221320-123456-ABCDEF12"));
  EXPECT_FALSE(IsValidRunId("../../etc/passwd"));
}

}  // namespace
}  // namespace kiln::store
