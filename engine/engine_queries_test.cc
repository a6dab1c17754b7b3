// kiln::Engine's store queries for the CLI (engine.h): Engine::OpenStore,
// attempt logs, stash/unstash, blobs, store stats and ExplainCacheKey.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/testing/files.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using Verdict = CacheExplanation::Verdict;

std::string TempDir(const std::string& name) {
  return test_files::TempDir("engine_queries_", name);
}

using test_files::ReadFile;
using test_files::WriteFile;

// build: "make build" over the source.
v1::Pipeline BuildPipeline() {
  v1::Pipeline p;
  p.set_name("demo");
  v1::Task* build = p.add_tasks();
  build->set_name("build");
  build->mutable_run()->add_command("make");
  build->mutable_run()->add_command("build");
  build->add_inputs()->set_artifact("source");
  return p;
}

class EngineQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    store_ = TempDir("store_" + name);
    source_ = TempDir("src_" + name);
    WriteFile(source_ + "/main.c", "int main() { return 0; }\n");
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("make", [](const v1::ExecRequest&) {
      FakeScript s;
      s.Stdout("made it");
      return s;
    });
    engine_ = engine_testing::MakeEngine(store_, executor_);
    ASSERT_NE(engine_, nullptr);
  }

  v1::Run Run() {
    RunRequest req;
    req.pipeline = BuildPipeline();
    req.source_dir = source_;
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    return (*run)->Wait();
  }

  std::string store_, source_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineQueriesTest, ExplainNamesTheKeysInputsAndWhatChanged) {
  v1::Run first = Run();
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED) << first.reason();
  auto e = engine_->ExplainCacheKey(first.id(), "build");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->verdict, Verdict::kNoEarlierRun);
  EXPECT_EQ(e->pipeline_name, "demo");
  EXPECT_EQ(e->state, v1::TASK_SUCCEEDED);
  EXPECT_FALSE(e->key.empty());
  EXPECT_EQ(e->recorded_by_run, first.id());
  EXPECT_THAT(e->inputs, Contains(Field(&store::KeyComponent::name, "inputs")));

  v1::Run second = Run();
  e = engine_->ExplainCacheKey(second.id(), "build");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->verdict, Verdict::kHit);
  EXPECT_EQ(e->recorded_by_run, first.id());

  WriteFile(source_ + "/main.c", "int main() { return 1; }\n");
  v1::Run third = Run();
  e = engine_->ExplainCacheKey(third.id(), "build");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->verdict, Verdict::kChanged);
  EXPECT_EQ(e->previous_run, second.id());  // the latest earlier run
  EXPECT_EQ(e->previous_key, second.tasks(0).cache_key());
  ASSERT_EQ(e->changes.size(), 1u);
  EXPECT_EQ(e->changes[0].name, "inputs");
  EXPECT_EQ(e->changes[0].kind, store::ComponentChange::Kind::kChanged);

  EXPECT_EQ(engine_->ExplainCacheKey(third.id(), "nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->ExplainCacheKey("no-such-run", "build").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EngineQueriesTest, AStoreOnlyEngineAnswersQueriesAndRunsNothing) {
  v1::Run run = Run();
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  ASSERT_TRUE(Engine::HasRunStore(store_));
  auto reader = Engine::OpenStore(store_);
  ASSERT_TRUE(reader.ok()) << reader.status();

  auto got = (*reader)->GetRun(run.id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), v1::RUN_SUCCEEDED);
  auto page = (*reader)->ListRuns(store::RunFilter(), 10, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->runs.size(), 1u);

  // Log paths come back absolute, whatever the run store recorded.
  auto logs = (*reader)->AttemptLogs(run.id(), "");
  ASSERT_TRUE(logs.ok()) << logs.status();
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_TRUE(absl::StartsWith((*logs)[0].path, store_ + "/"))
      << (*logs)[0].path;
  EXPECT_THAT(ReadFile((*logs)[0].path), HasSubstr("made it"));

  auto stats = (*reader)->GetStoreStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->runs, 1);
  EXPECT_EQ(stats->runs_by_state[v1::RUN_SUCCEEDED], 1);
  EXPECT_GE(stats->artifacts, 1);  // the source
  EXPECT_GE(stats->blobs, 1);

  RunRequest req;
  req.pipeline = BuildPipeline();
  EXPECT_EQ((*reader)->Submit(std::move(req)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*reader)->Retry(run.id()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*reader)->Cancel(run.id(), "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(executor_->requests().size(), 1u);
}

// A failure the engine hits (here: stashing a directory that does not
// exist) keeps its absl::StatusCode in the task's result, live and as
// recorded. Before the run store kept it (schema 4), Wait() and GetRun
// said 0.
TEST_F(EngineQueriesTest, ATasksErrorCodeSurvivesToTheRunsResult) {
  v1::Pipeline p;
  p.set_name("codes");
  v1::Task* stash = p.add_tasks();
  stash->set_name("pack");
  stash->mutable_stash()->set_artifact("bundle");
  stash->mutable_stash()->set_from("missing");
  RunRequest req;
  req.pipeline = p;
  req.source_dir = source_;
  auto handle = engine_->Submit(std::move(req));
  ASSERT_TRUE(handle.ok()) << handle.status();
  v1::Run run = (*handle)->Wait();
  ASSERT_EQ(run.tasks_size(), 1);
  EXPECT_EQ(run.tasks(0).state(), v1::TASK_FAILED);
  EXPECT_THAT(run.tasks(0).reason(), HasSubstr("stash missing"));
  EXPECT_EQ(run.tasks(0).error_code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  auto reader = Engine::OpenStore(store_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto recorded = (*reader)->GetRun(run.id());
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(recorded->tasks(0).error_code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  // The event stream carries it too.
  auto events = engine_->ReadEvents(run.id(), 0, 100);
  ASSERT_TRUE(events.ok()) << events.status();
  int failed_events = 0;
  for (const v1::RunEvent& e : *events) {
    if (e.has_task_state() && e.task_state().state() == v1::TASK_FAILED) {
      ++failed_events;
      EXPECT_EQ(e.task_state().error_code(),
                static_cast<int>(absl::StatusCode::kNotFound));
    }
  }
  EXPECT_EQ(failed_events, 1);
}

TEST(EngineStoreTest, StashUnstashAndBlobsGoThroughTheFacade) {
  const std::string store = TempDir("stash_store");
  EXPECT_FALSE(Engine::HasRunStore(store));
  auto engine = Engine::OpenStore(store);
  ASSERT_TRUE(engine.ok()) << engine.status();

  const std::string src = TempDir("stash_src");
  WriteFile(src + "/a/keep.txt", "keep\n");
  WriteFile(src + "/b/other.txt", "other\n");
  auto all = (*engine)->StashDirectory(src);
  ASSERT_TRUE(all.ok()) << all.status();
  auto some = (*engine)->StashDirectory(src, {"a"});
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_NE(all->tree, some->tree);
  EXPECT_TRUE((*engine)->HasBlob(some->archive));

  const std::string out = TempDir("stash_out") + "/tree";
  ASSERT_TRUE((*engine)->UnstashArtifact(some->tree, out).ok());
  EXPECT_EQ(ReadFile(out + "/a/keep.txt"), "keep\n");
  EXPECT_FALSE(fs::exists(out + "/b"));
  EXPECT_FALSE(
      (*engine)->UnstashArtifact(cas::Digest::Of("none"), out + "2").ok());

  WriteFile(src + "/blob.bin", "blob bytes");
  auto blob = (*engine)->PutBlobFile(src + "/blob.bin");
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(*blob, cas::Digest::Of("blob bytes"));
  auto reader = (*engine)->OpenBlob(*blob);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string buf(64, '\0');
  auto n = (*reader)->Read(buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(buf.substr(0, *n), "blob bytes");
  EXPECT_FALSE((*engine)->PutBlobFile(src + "/missing").ok());
}

}  // namespace
}  // namespace kiln
