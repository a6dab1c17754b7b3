// The dispatcher over the kind registry: unsupported tasks are skipped with
// the reason, durable-write failures fail the task with their status code,
// a workspace that cannot be removed is reported on the task's log.
#include "engine/run/task_runner.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "engine/cas/artifact_store.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "engine/store/sqlite.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TaskRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/runner_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/src/site");
    std::ofstream(root_ + "/src/site/index.html") << "hello\n";
    store_ = root_ + "/store";
    auto artifacts = cas::ArtifactStore::Open(store_);
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    artifacts_ = std::move(*artifacts);
    auto cache = store::ActionCache::Open(store_);
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(*cache);
    auto runs = store::RunStore::Open(store_);
    ASSERT_TRUE(runs.ok()) << runs.status();
    runs_ = std::move(*runs);
    pipeline_.set_name("p");
  }

  v1::Task* AddStash() {
    v1::Task* t = pipeline_.add_tasks();
    t->set_name("site");
    t->mutable_stash()->set_artifact("site");
    t->mutable_stash()->set_from("site");
    return t;
  }

  // A run of pipeline_ recorded in the run store (or an unrecorded id).
  TaskRunnerContext Context(bool create_run) {
    TaskRunnerContext ctx;
    ctx.run_id = "r-unrecorded";
    if (create_run) {
      auto created = runs_->CreateRun(pipeline_, v1::Trigger(), ".", "");
      EXPECT_TRUE(created.ok()) << created.status();
      if (created.ok()) ctx.run_id = created->run_id;
    }
    ctx.pipeline_name = pipeline_.name();
    ctx.store_dir = store_;
    ctx.source_dir = root_ + "/src";
    ctx.executor = &executor_;
    ctx.artifacts = artifacts_.get();
    ctx.action_cache = cache_.get();
    ctx.run_store = runs_.get();
    ctx.emit = [this](v1::RunEvent e) {
      MutexLock lock(&mu_);
      if (e.has_log()) lines_.push_back(e.log().text());
    };
    return ctx;
  }

  AttemptOutcome Run(EngineTaskRunner* runner, const v1::Task& task) {
    CancelSignal cancel;
    return runner->RunAttempt(task, 1, {}, &cancel);
  }

  std::vector<std::string> Lines() {
    MutexLock lock(&mu_);
    return lines_;
  }

  std::string root_, store_;
  v1::Pipeline pipeline_;
  FakeExecutor executor_;
  std::unique_ptr<cas::ArtifactStore> artifacts_;
  std::unique_ptr<store::ActionCache> cache_;
  std::unique_ptr<store::RunStore> runs_;
  Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TaskRunnerTest, AStashIsRecordedWithTheRun) {
  const v1::Task& task = *AddStash();
  EngineTaskRunner runner(Context(/*create_run=*/true));
  AttemptOutcome o = Run(&runner, task);
  EXPECT_EQ(o.state, v1::TASK_SUCCEEDED) << o.reason;
  EXPECT_EQ(o.code, absl::StatusCode::kOk);
  EXPECT_EQ(o.outputs.count("site"), 1u);
}

TEST_F(TaskRunnerTest, AFailedOutputRecordFailsTheTaskWithItsCode) {
  v1::Task* task = pipeline_.add_tasks();
  task->set_name("build");
  task->mutable_run()->add_command("build");
  TaskRunnerContext ctx = Context(/*create_run=*/true);
  const std::string run_id = ctx.run_id;
  // While the command runs, the task's row disappears from the run store
  // (as if the record were lost): recording the outputs afterwards fails.
  executor_.On("build", [this, run_id](const v1::ExecRequest&) {
    return FakeScript().Do([this, run_id](const v1::ExecRequest&) {
      auto db = store::Database::Open(store_ + "/runs.db");
      ASSERT_TRUE(db.ok()) << db.status();
      ASSERT_TRUE((*db)
                      ->Exec(absl::StrCat("DELETE FROM tasks WHERE run_id = '",
                                          run_id, "'"))
                      .ok());
    });
  });
  EngineTaskRunner runner(std::move(ctx));
  AttemptOutcome o = Run(&runner, *task);
  EXPECT_EQ(o.state, v1::TASK_FAILED);
  EXPECT_EQ(o.code, absl::StatusCode::kNotFound);
  EXPECT_THAT(o.reason, HasSubstr("recording the task's outputs with the run"));
}

// A batch of hits offered at once: keys and presence checks are shared with
// the runner's side thread (base/side_thread.h) — every hit found, each with
// its own outputs, and a hit whose output left the store is not one.
TEST_F(TaskRunnerTest, ABatchOfHitsIsFoundWhole) {
  constexpr int kTasks = 24;
  std::vector<v1::Task*> tasks;
  for (int i = 0; i < kTasks; ++i) {
    v1::Task* t = pipeline_.add_tasks();
    t->set_name(absl::StrCat("t", i));
    t->mutable_run()->add_command(absl::StrCat("make-", i));
    v1::ArtifactOutput* out = t->add_outputs();
    out->set_artifact(absl::StrCat("a", i));
    out->add_paths("out.txt");
    executor_.On(absl::StrCat("make-", i), [i](const v1::ExecRequest&) {
      return FakeScript().WriteFile("out.txt", absl::StrCat("made ", i, "\n"));
    });
    tasks.push_back(t);
  }
  EngineTaskRunner first(Context(/*create_run=*/true));
  std::map<std::string, std::string> made;  // artifact -> digest
  for (v1::Task* t : tasks) {
    AttemptOutcome o = Run(&first, *t);
    ASSERT_EQ(o.state, v1::TASK_SUCCEEDED) << t->name() << ": " << o.reason;
    ASSERT_EQ(o.outputs.size(), 1u);
    made.insert(o.outputs.begin(), o.outputs.end());
  }
  // One output's archive leaves the store: that task is no hit.
  auto gone = artifacts_->VouchedArchiveOf(*cas::Digest::Parse(made["a7"]));
  ASSERT_TRUE(gone.ok()) << gone.status();
  const std::string hex = gone->Hex();
  ASSERT_TRUE(fs::remove(absl::StrCat(store_, "/cas/sha256/", hex.substr(0, 2),
                                      "/", hex.substr(2))));

  EngineTaskRunner second(Context(/*create_run=*/true));
  std::vector<ReadyTask> ready;
  for (v1::Task* t : tasks) ready.push_back(ReadyTask{t, 1, {}});
  std::vector<std::optional<AttemptOutcome>> hits = second.TryCached(ready);
  ASSERT_EQ(hits.size(), ready.size());
  for (int i = 0; i < kTasks; ++i) {
    if (i == 7) {
      EXPECT_FALSE(hits[i].has_value()) << "its output is gone";
      continue;
    }
    ASSERT_TRUE(hits[i].has_value()) << i;
    EXPECT_EQ(hits[i]->state, v1::TASK_CACHED) << i;
    const std::string artifact = absl::StrCat("a", i);
    ASSERT_EQ(hits[i]->outputs.count(artifact), 1u) << i;
    EXPECT_EQ(hits[i]->outputs.at(artifact), made[artifact]) << i;
    EXPECT_FALSE(hits[i]->cache_key.empty()) << i;
  }
}

// Under `options.unsupported: skip`; without it, what only run time shows
// unsupported fails (validation refused the rest before anything ran).
TEST_F(TaskRunnerTest, UnsupportedTasksAreSkippedWithTheReason) {
  v1::Task* image = pipeline_.add_tasks();
  image->set_name("image");
  image->mutable_containerize()->set_base("scratch");
  image->mutable_containerize()->set_push("registry.test/x");
  v1::Task* deploy = pipeline_.add_tasks();
  deploy->set_name("deploy");
  deploy->mutable_deploy()->set_environment("e");
  deploy->mutable_deploy()->set_overlay("o");
  deploy->mutable_deploy()->set_context("prod");
  v1::Task* go = pipeline_.add_tasks();
  go->set_name("go");
  go->mutable_run()->set_image("golang:1.22");
  go->mutable_run()->add_command("go");
  TaskRunnerContext ctx = Context(/*create_run=*/true);
  ctx.skip_unsupported = true;
  ctx.capabilities.cluster = [](const std::string& context) {
    return absl::NotFoundError("no context " + context);
  };
  EngineTaskRunner runner(ctx);
  AttemptOutcome o = Run(&runner, *image);
  // Pushing is supported; without a registry client it fails the task.
  EXPECT_EQ(o.state, v1::TASK_FAILED);
  EXPECT_THAT(o.reason, HasSubstr("no registry client is configured"));
  o = Run(&runner, *deploy);
  EXPECT_EQ(o.state, v1::TASK_SKIPPED);
  EXPECT_THAT(o.reason, HasSubstr("deploy has no cluster: no context"));
  o = Run(&runner, *go);
  EXPECT_EQ(o.state, v1::TASK_SKIPPED);
  EXPECT_THAT(o.reason, HasSubstr("run.image 'golang:1.22' cannot run here"));
  // Nothing reached the executor: the image never silently ran on the host.
  EXPECT_TRUE(executor_.requests().empty());

  EngineTaskRunner failing(Context(/*create_run=*/true));
  o = Run(&failing, *go);
  EXPECT_EQ(o.state, v1::TASK_FAILED);
  EXPECT_THAT(o.reason, HasSubstr("run.image 'golang:1.22' cannot run here"));
  EXPECT_THAT(o.reason, HasSubstr("set options.unsupported: skip"));
  EXPECT_TRUE(executor_.requests().empty());
}

// Sets or clears the immutable flag (root cannot remove such a file).
bool SetImmutable(const std::string& path, bool on) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  close(fd);
  return ok;
}

TEST_F(TaskRunnerTest, AWorkspaceThatCannotBeRemovedIsReported) {
  v1::Task* task = pipeline_.add_tasks();
  task->set_name("pin");
  task->mutable_run()->add_command("pin");
  std::string pinned;
  bool immutable = false;
  executor_.On("pin", [&](const v1::ExecRequest& req) {
    return FakeScript()
        .Do([&](const v1::ExecRequest& r) {
          pinned = r.workspace() + "/pinned";
          std::ofstream(pinned) << "x";
          immutable = SetImmutable(pinned, true);
        })
        .Exit(0);
  });
  EngineTaskRunner runner(Context(/*create_run=*/true));
  AttemptOutcome o = Run(&runner, *task);
  ASSERT_TRUE(immutable) << "this test needs a file system with the "
                            "immutable flag (ext4, xfs, btrfs) and root";
  EXPECT_EQ(o.state, v1::TASK_SUCCEEDED) << o.reason;
  std::vector<std::string> lines = Lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), HasSubstr("kiln: workspace "));
  EXPECT_THAT(lines.back(), HasSubstr("could not be removed"));
  EXPECT_TRUE(SetImmutable(pinned, false));
  fs::remove_all(fs::path(pinned).parent_path());
}

}  // namespace
}  // namespace kiln
