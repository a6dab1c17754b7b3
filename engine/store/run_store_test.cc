#include "engine/store/run_store.h"

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/run_id.h"
#include "engine/store/run_lease.h"
#include "engine/store/run_store_test_util.h"
#include "engine/store/sqlite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

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
// A pipeline is kept once however many runs use it, outside the runs
// rows; a run recorded before (its pipeline in its row) still reads.
TEST_F(RunStoreTest, APipelineIsKeptOnceAndInlineOnesStillRead) {
  v1::Pipeline p = MakePipeline("kcow", {"build", "test"}, {});
  auto a = store_->CreateRun(p, v1::Trigger(), "", "");
  auto b = store_->CreateRun(p, v1::Trigger(), "", "");
  ASSERT_TRUE(a.ok() && b.ok());
  auto db = Database::Open(dir_ + "/runs.db");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM pipeline_blobs"), 1);
  EXPECT_EQ(*(*db)->QueryInt("SELECT MAX(LENGTH(pipeline)) FROM runs"), 0);
  EXPECT_EQ(store_->GetPipeline(a->run_id)->name(), "kcow");
  EXPECT_EQ(store_->GetPipeline(b->run_id)->tasks_size(), 2);
  // As schema 7 recorded it: inline, no digest.
  {
    auto old = (*db)->Prepare(
        "UPDATE runs SET pipeline = ?2, pipeline_digest = NULL WHERE id = ?1");
    ASSERT_TRUE(old.ok());
    old->BindText(1, a->run_id).BindBlob(2, p.SerializeAsString());
    ASSERT_TRUE(old->Run().ok());
  }
  EXPECT_EQ(store_->GetPipeline(a->run_id)->tasks_size(), 2);
  // A lost blob is damage, said as such.
  ASSERT_TRUE((*db)->Exec("DELETE FROM pipeline_blobs").ok());
  EXPECT_EQ(store_->GetPipeline(b->run_id).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->GetPipeline(a->run_id)->tasks_size(), 2);
}

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
