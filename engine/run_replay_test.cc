// Whole-run replay (engine/run_replay.h): a run whose roots equal a
// finished run's is recorded as its replay, reads exactly like the no-op
// the scheduler would have recorded, and is refused whenever any part of
// the source is no longer what it was.
#include <stdio.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/engine_test_fixture.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "engine/store/sqlite.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using engine_testing::BuildTestPipeline;
using engine_testing::EngineTest;

class ReplayTest : public EngineTest {
 protected:
  // The run this run replays ("" for none), from the record itself.
  std::string ReplayOf(const std::string& run_id) {
    auto db = store::Database::Open(store_ + "/runs.db");
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return "?";
    auto stmt = (*db)->Prepare(
        "SELECT COALESCE(replay_of, '') FROM runs WHERE id = ?1");
    EXPECT_TRUE(stmt.ok());
    stmt->BindText(1, run_id);
    auto row = stmt->Step();
    EXPECT_TRUE(row.ok() && *row);
    return stmt->Text(0);
  }

  // Submits, subscribes at once (live delivery), waits.
  // Submits the test pipeline on the source.
  absl::StatusOr<std::shared_ptr<RunHandle>> Start() {
    RunRequest req;
    req.pipeline = BuildTestPipeline();
    req.source_dir = source_;
    return engine_->Submit(std::move(req));
  }

  v1::Run RunLive(std::vector<v1::RunEvent>* events) {
    auto run = Start();
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    auto mu = std::make_shared<Mutex>();
    (*run)->Subscribe(0, [events, mu](const v1::RunEvent& e) {
      MutexLock lock(mu.get());
      events->push_back(e);
    });
    v1::Run result = (*run)->Wait();
    MutexLock lock(mu.get());
    return result;
  }

  std::vector<v1::RunEvent> ReadAll(const std::string& run_id, uint64_t after,
                                    int limit) {
    auto runs = store::RunStore::Open(store_);
    EXPECT_TRUE(runs.ok());
    std::vector<v1::RunEvent> all;
    while (true) {
      auto page = (*runs)->ReadEvents(run_id, after, limit);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || page->empty()) break;
      for (auto& e : *page) all.push_back(e);
      after = all.back().sequence();
    }
    return all;
  }
};

std::string Bytes(const v1::RunEvent& e) {
  std::string s;
  e.SerializeToString(&s);
  return s;
}

TEST_F(ReplayTest, AReplaysSummaryOmitsItsTasksWhichAreMadeWhenAskedFor) {
  v1::Run first;
  {
    // Not a replay: the summary is the whole run.
    auto run = Start();
    ASSERT_TRUE(run.ok()) << run.status();
    std::shared_ptr<const v1::Run> summary = (*run)->WaitSummary();
    ASSERT_EQ(summary->state(), v1::RUN_SUCCEEDED) << summary->reason();
    EXPECT_FALSE(summary->tasks_omitted());
    EXPECT_EQ(summary->tasks_size(), 2);
    EXPECT_EQ((*run)->WaitShared(), summary);
    first = *summary;
  }
  auto run = Start();
  ASSERT_TRUE(run.ok()) << run.status();
  std::shared_ptr<const v1::Run> summary = (*run)->WaitSummary();
  ASSERT_NE(summary, nullptr);
  EXPECT_EQ(ReplayOf(summary->id()), first.id());
  EXPECT_EQ(summary->state(), v1::RUN_SUCCEEDED);
  EXPECT_TRUE(summary->tasks_omitted());
  EXPECT_EQ(summary->tasks_size(), 0);
  EXPECT_EQ(summary->pipeline_name(), first.pipeline_name());
  // The whole run, made on request, as the store reads it; kept after.
  std::shared_ptr<const v1::Run> whole = (*run)->WaitShared();
  ASSERT_NE(whole, nullptr);
  EXPECT_FALSE(whole->tasks_omitted());
  EXPECT_EQ(whole->state(), v1::RUN_SUCCEEDED);
  ASSERT_EQ(whole->tasks_size(), 2);
  auto runs = store::RunStore::Open(store_);
  ASSERT_TRUE(runs.ok());
  auto reread = (*runs)->GetRun(summary->id());
  ASSERT_TRUE(reread.ok());
  EXPECT_EQ(whole->SerializeAsString(), reread->SerializeAsString());
  EXPECT_EQ((*run)->WaitShared(), whole);
  v1::Run copy;
  ASSERT_TRUE((*run)->WaitFor(absl::Seconds(1), &copy));
  EXPECT_EQ(copy.SerializeAsString(), whole->SerializeAsString());
}

TEST_F(ReplayTest, ASecondIdenticalRunIsAReplayThatReadsLikeTheNoOp) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED) << first.reason();
  ASSERT_EQ(Executed(), 2u);
  EXPECT_EQ(ReplayOf(first.id()), "");

  std::vector<v1::RunEvent> live;
  v1::Run second = RunLive(&live);
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED) << second.reason();
  EXPECT_EQ(Executed(), 2u) << "a replay executes nothing";
  EXPECT_EQ(ReplayOf(second.id()), first.id());

  // Every task as a hit records it.
  ASSERT_EQ(second.tasks_size(), 2);
  for (const v1::TaskStatus& t : second.tasks()) {
    const v1::TaskStatus& before = Task(first, t.name());
    EXPECT_EQ(t.state(), v1::TASK_CACHED) << t.name();
    EXPECT_EQ(t.attempts(), 1u);
    EXPECT_EQ(t.reason(), "cache hit");
    EXPECT_EQ(t.cache_key(), before.cache_key());
    EXPECT_FALSE(t.cache_key().empty());
    EXPECT_EQ(t.outputs().size(), before.outputs().size());
    for (const auto& [k, v] : before.outputs()) {
      EXPECT_EQ(t.outputs().at(k), v);
    }
    EXPECT_TRUE(t.has_started() && t.has_finished());
  }
  EXPECT_EQ(second.tasks(0).name(), "build");  // pipeline order

  // Live events: contiguous, needs before dependents, RUNNING then CACHED.
  ASSERT_EQ(live.size(), 6u);  // run RUNNING, 2 per task, run SUCCEEDED
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_EQ(live[i].sequence(), i + 1);
    EXPECT_EQ(live[i].run_id(), second.id());
  }
  EXPECT_EQ(live[1].task_state().task(), "build");
  EXPECT_EQ(live[1].task_state().state(), v1::TASK_RUNNING);
  EXPECT_EQ(live[2].task_state().state(), v1::TASK_CACHED);
  EXPECT_EQ(live[2].task_state().outputs().at("app"),
            Task(first, "build").outputs().at("app"));
  EXPECT_EQ(live[3].task_state().task(), "test");
  EXPECT_EQ(live[5].run_state().state(), v1::RUN_SUCCEEDED);

  // What a reader gets later is what was delivered live, in any page size
  // and from any point.
  for (int limit : {1, 2, 3, 1000}) {
    std::vector<v1::RunEvent> read = ReadAll(second.id(), 0, limit);
    ASSERT_EQ(read.size(), live.size()) << limit;
    for (size_t i = 0; i < read.size(); ++i) {
      EXPECT_EQ(Bytes(read[i]), Bytes(live[i])) << limit << " " << i;
    }
  }
  std::vector<v1::RunEvent> tail = ReadAll(second.id(), 2, 1);
  ASSERT_EQ(tail.size(), 4u);
  EXPECT_EQ(tail[0].sequence(), 3u);
  auto runs = store::RunStore::Open(store_);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(*(*runs)->LastSequence(second.id()), 6u);
  auto reread = (*runs)->GetRun(second.id());
  ASSERT_TRUE(reread.ok());
  EXPECT_EQ(reread->state(), v1::RUN_SUCCEEDED);
  ASSERT_EQ(reread->tasks_size(), 2);
  EXPECT_EQ(reread->tasks(1).SerializeAsString(),
            second.tasks(1).SerializeAsString());

  // A third run replays the same source.
  v1::Run third = Run(BuildTestPipeline());
  EXPECT_EQ(ReplayOf(third.id()), first.id());
  EXPECT_EQ(Executed(), 2u);
}

TEST_F(ReplayTest, AMissingOutputArchiveRefusesTheReplay) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  auto artifacts = cas::ArtifactStore::Open(store_);
  ASSERT_TRUE(artifacts.ok());
  auto tree = cas::Digest::Parse(Task(first, "build").outputs().at("app"));
  ASSERT_TRUE(tree.ok());
  auto archive = (*artifacts)->ArchiveOf(*tree);
  ASSERT_TRUE(archive.ok());
  ASSERT_EQ(unlink((*artifacts)->blobs().BlobPath(*archive).c_str()), 0);

  v1::Run second = Run(BuildTestPipeline());
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED) << second.reason();
  EXPECT_EQ(ReplayOf(second.id()), "");
  EXPECT_EQ(Task(second, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Executed(), 3u) << "build runs again; test still hits";
}

TEST_F(ReplayTest, ARemovedCacheEntryRefusesTheReplay) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  {
    auto cache = store::ActionCache::Open(store_);
    ASSERT_TRUE(cache.ok());
    auto removed = (*cache)->RemoveOlderThan(absl::Now() + absl::Hours(1));
    ASSERT_TRUE(removed.ok());
    EXPECT_EQ(*removed, 2);
  }
  v1::Run second = Run(BuildTestPipeline());
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED);
  EXPECT_EQ(ReplayOf(second.id()), "");
  EXPECT_EQ(Executed(), 4u);
  // The run that executed becomes the source of the next replay.
  v1::Run third = Run(BuildTestPipeline());
  EXPECT_EQ(ReplayOf(third.id()), second.id());
  EXPECT_EQ(Executed(), 4u);
}

TEST_F(ReplayTest, AReplacedEntryOfAnotherTaskRefusesItButHitsStillServe) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  {
    // Another writer replaces the test task's entry with the same result.
    auto cache = store::ActionCache::Open(store_);
    ASSERT_TRUE(cache.ok());
    const std::string key = Task(first, "test").cache_key();
    auto entry = (*cache)->Lookup(key);
    ASSERT_TRUE(entry.ok() && entry->has_value());
    auto before = (*cache)->Epoch();
    ASSERT_TRUE(before.ok());
    ASSERT_TRUE((*cache)->Put(key, **entry).ok());
    EXPECT_NE(*(*cache)->Epoch(), *before);
  }
  v1::Run second = Run(BuildTestPipeline());
  EXPECT_EQ(ReplayOf(second.id()), "");
  EXPECT_EQ(Task(second, "test").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), 2u);
  v1::Run third = Run(BuildTestPipeline());
  EXPECT_EQ(ReplayOf(third.id()), second.id());
}

TEST_F(ReplayTest, OtherRootsOrTasksAreNotReplayed) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  // Another param value: another fingerprint (test reruns).
  v1::Trigger t;
  (*t.mutable_params())["greeting"] = "hello";
  v1::Run param = Run(BuildTestPipeline(), t);
  EXPECT_EQ(ReplayOf(param.id()), "");
  EXPECT_EQ(Executed(), 3u);
  // Another source: another fingerprint.
  engine_testing::WriteFile(source_ + "/src/extra.txt", "x\n");
  v1::Run source = Run(BuildTestPipeline());
  EXPECT_EQ(ReplayOf(source.id()), "");
  // A task that opts out of the cache is never replayed.
  v1::Pipeline uncached = BuildTestPipeline();
  uncached.mutable_tasks(1)->set_cache(false);
  Run(uncached);
  v1::Run again = Run(uncached);
  EXPECT_EQ(ReplayOf(again.id()), "");
  EXPECT_EQ(Task(again, "test").state(), v1::TASK_SUCCEEDED);
}

int replay_appends_before_failure = 0;

TEST_F(ReplayTest, AReplayThatCannotBeRecordedRunsAsANoOpInstead) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  // The replay's one transaction fails: nothing of it was delivered or
  // kept, and the run goes through the scheduler, every task a hit.
  replay_appends_before_failure = 1;
  store::SetAppendEventsHookForTesting([](absl::string_view) {
    if (--replay_appends_before_failure != 0) return absl::OkStatus();
    return absl::UnavailableError("the disk went away");
  });
  std::vector<v1::RunEvent> live;
  v1::Run second = RunLive(&live);
  store::SetAppendEventsHookForTesting(nullptr);
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED) << second.reason();
  EXPECT_EQ(ReplayOf(second.id()), "");
  EXPECT_EQ(Task(second, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(second, "test").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), 2u);
  ASSERT_EQ(live.size(), 6u);
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_EQ(live[i].sequence(), i + 1);
  }
  std::vector<v1::RunEvent> read = ReadAll(second.id(), 0, 1000);
  ASSERT_EQ(read.size(), live.size());
}

TEST_F(ReplayTest, AChangedIndexShardIsReadAgain) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  // A replay once the shards have settled stamps them.
  absl::SleepFor(absl::Milliseconds(2100));
  v1::Run second = Run(BuildTestPipeline());
  ASSERT_EQ(ReplayOf(second.id()), first.id());
  // build's index entry is replaced (by a rename, as kiln writes them)
  // with one naming another archive: its shard's stamp changes, the entry
  // is read again and the replay refused; build runs again.
  auto tree = cas::Digest::Parse(Task(first, "build").outputs().at("app"));
  ASSERT_TRUE(tree.ok());
  const std::string hex = tree->Hex();
  const std::string entry =
      store_ + "/artifacts/" + hex.substr(0, 2) + "/" + hex.substr(2);
  engine_testing::WriteFile(entry + ".new",
                            "sha256:" + std::string(64, 'e') + " 10\n");
  ASSERT_EQ(rename((entry + ".new").c_str(), entry.c_str()), 0);
  v1::Run third = Run(BuildTestPipeline());
  ASSERT_EQ(third.state(), v1::RUN_SUCCEEDED) << third.reason();
  EXPECT_EQ(ReplayOf(third.id()), "");
  EXPECT_EQ(Task(third, "build").state(), v1::TASK_SUCCEEDED);
}

TEST(ActionCacheEpochTest, ChangesOnRemovalAndReplacementOnly) {
  std::string dir = engine_testing::TempDir("epoch");
  auto cache = store::ActionCache::Open(dir);
  ASSERT_TRUE(cache.ok());
  int64_t e0 = *(*cache)->Epoch();
  store::ActionResult r;
  r.outputs["a"] = "sha256:" + std::string(64, 'a');
  ASSERT_TRUE((*cache)->Put("k1", r).ok());
  ASSERT_TRUE((*cache)->Put("k2", r).ok());
  EXPECT_EQ(*(*cache)->Epoch(), e0) << "a new entry removes nothing";
  ASSERT_TRUE((*cache)->Put("k1", r).ok());
  int64_t e1 = *(*cache)->Epoch();
  EXPECT_NE(e1, e0);
  ASSERT_TRUE((*cache)->RemoveOlderThan(absl::Now() + absl::Hours(1)).ok());
  EXPECT_NE(*(*cache)->Epoch(), e1);
  // Another store's epoch starts elsewhere.
  auto other = store::ActionCache::Open(engine_testing::TempDir("epoch2"));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*(*other)->Epoch(), e0);
}

}  // namespace
}  // namespace kiln
