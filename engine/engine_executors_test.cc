// One engine, several executors: each task runs on the one it names (or the
// pipeline's, or the engine's default); unknown names are refused before
// anything runs; each executor's platform is in the task's key.
#include <stdlib.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/engine.h"
#include "engine/pipeline/loader.h"
#include "executors/fake/fake_executor.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

class EngineExecutorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(getenv("TEST_TMPDIR"), "/ee-", cas::RandomSuffix());
    ASSERT_TRUE(cas::MakeDirs(root_ + "/src").ok());
    fake_ = std::make_shared<FakeExecutor>();
    fake_->On("produce", [](const v1::ExecRequest&) {
      FakeScript s;
      s.WriteFile("made/a.txt", "made by the fake");
      return s;
    });
    LocalSandboxOptions sandbox;
    sandbox.hidden_paths = DefaultHiddenPaths("");
    sandbox.cgroups = LocalSandboxOptions::Cgroups::kOff;
    auto local = LocalSandboxExecutor::Create(sandbox);
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = std::move(*local);
  }
  void TearDown() override {
    engine_.reset();
    ASSERT_TRUE(cas::RemoveTree(root_).ok());
  }

  void MakeEngine(const std::string& default_executor) {
    EngineOptions options;
    options.store_dir = root_ + "/store";
    options.executors = {fake_, local_};
    options.default_executor = default_executor;
    options.retry_backoff = absl::Milliseconds(1);
    auto engine = Engine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  absl::StatusOr<v1::Run> Run(const std::string& yaml) {
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineText(yaml, "pipeline.yaml");
    if (!loaded.ok()) {
      return absl::InvalidArgumentError(loaded.errors[0].ToString());
    }
    RunRequest req;
    req.pipeline = std::move(loaded.pipeline);
    req.source_dir = root_ + "/src";
    auto run = engine_->Submit(std::move(req));
    if (!run.ok()) return run.status();
    return (*run)->Wait();
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  std::string root_;
  std::shared_ptr<FakeExecutor> fake_;
  std::shared_ptr<LocalSandboxExecutor> local_;
  std::unique_ptr<Engine> engine_;
};

constexpr char kTwoExecutors[] = R"(
name: two
tasks:
  - name: produce
    executor: fake
    run: {command: [produce]}
    outputs: [{artifact: a, paths: [made]}]
  - name: consume
    needs: [produce]
    inputs: [{artifact: a}]
    run:
      command: [/bin/sh, -c, "cat made/a.txt > b.txt && echo sandboxed"]
    outputs: [{artifact: b, paths: [b.txt]}]
)";

TEST_F(EngineExecutorsTest, OneRunUsesTwoExecutorsChosenPerTask) {
  MakeEngine("local-sandbox");
  absl::StatusOr<v1::Run> run = Run(kTwoExecutors);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->state(), v1::RUN_SUCCEEDED) << run->reason();
  EXPECT_EQ(Task(*run, "produce").state(), v1::TASK_SUCCEEDED)
      << Task(*run, "produce").reason();
  EXPECT_EQ(Task(*run, "consume").state(), v1::TASK_SUCCEEDED)
      << Task(*run, "consume").reason();
  // Only `produce` went to the fake; `consume` really ran in the sandbox
  // and read what the fake made.
  ASSERT_EQ(fake_->requests().size(), 1u);
  EXPECT_EQ(fake_->requests()[0].task(), "produce");
  auto store = cas::ArtifactStore::Open(root_ + "/store");
  ASSERT_TRUE(store.ok());
  auto b = cas::Digest::Parse(Task(*run, "consume").outputs().at("b"));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*store)->Unstash(*b, root_ + "/b").ok());
  EXPECT_EQ(ReadFile(root_ + "/b/b.txt"), "made by the fake");

  // Again: each task's key (with its executor's platform) is what it was.
  absl::StatusOr<v1::Run> again = Run(kTwoExecutors);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Task(*again, "produce").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(*again, "consume").state(), v1::TASK_CACHED);
}

TEST_F(EngineExecutorsTest, ThePipelineDefaultAndTheEngineDefaultApply) {
  MakeEngine("fake");
  // No task names an executor: the pipeline's options.executor decides.
  absl::StatusOr<v1::Run> run = Run(R"(
name: sandboxed
options: {executor: local-sandbox}
tasks:
  - name: hello
    run: {command: [/bin/sh, -c, "echo hi > out.txt"]}
    outputs: [{artifact: out, paths: [out.txt]}]
)");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_SUCCEEDED) << run->reason();
  EXPECT_TRUE(fake_->requests().empty());
  // Without it, the engine's default (the fake) runs it.
  run = Run(R"(
name: faked
tasks:
  - name: produce
    run: {command: [produce]}
)");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_SUCCEEDED) << run->reason();
  EXPECT_EQ(fake_->requests().size(), 1u);
}

TEST_F(EngineExecutorsTest, UnknownExecutorNamesAreRefusedBeforeAnythingRuns) {
  MakeEngine("local-sandbox");
  absl::StatusOr<v1::Run> run = Run(R"(
name: typo
options: {executor: pod}
tasks:
  - name: produce
    executor: fake
    run: {command: [produce]}
  - name: other
    executor: k8s
    run: {command: [produce]}
)");
  ASSERT_TRUE(absl::IsInvalidArgument(run.status())) << run.status();
  EXPECT_TRUE(absl::StrContains(
      run.status().message(),
      "task 'other': unknown executor 'k8s' (known: fake, local-sandbox)"))
      << run.status();
  EXPECT_TRUE(
      absl::StrContains(run.status().message(), "unknown executor 'pod'"))
      << run.status();
  EXPECT_TRUE(fake_->requests().empty()) << "nothing ran";
}

// A pipeline loaded from a file: the unknown names are reported at their
// place in it, FILE:LINE:COL, as every other validation error (they were
// reported by field path, `tasks[1].executor: ...`).
TEST_F(EngineExecutorsTest, UnknownExecutorNamesArePlacedInTheFile) {
  MakeEngine("local-sandbox");
  pipeline::LoadedPipeline loaded = pipeline::LoadPipelineText(R"(name: typo
options: {executor: pod}
tasks:
  - name: produce
    executor: fake
    run: {command: [produce]}
  - name: other
    executor: k8s
    run: {command: [produce]}
)",
                                                               "p.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.errors[0].ToString();
  RunRequest req;
  req.pipeline = loaded.pipeline;
  req.source_map = loaded.source_map;
  auto run = engine_->Submit(req);
  ASSERT_TRUE(absl::IsInvalidArgument(run.status())) << run.status();
  EXPECT_TRUE(absl::StrContains(run.status().message(),
                                "p.yaml:2:21: unknown executor 'pod'"))
      << run.status();
  EXPECT_TRUE(absl::StrContains(
      run.status().message(),
      "p.yaml:8:15: task 'other': unknown executor 'k8s' (known: fake, "
      "local-sandbox)"))
      << run.status();
  EXPECT_FALSE(absl::StrContains(run.status().message(), "tasks[1]"))
      << run.status();
  EXPECT_TRUE(fake_->requests().empty()) << "nothing ran";

  // Without a source map (a pipeline sent as a message), the field path.
  req.source_map = nullptr;
  run = engine_->Submit(req);
  EXPECT_TRUE(absl::StrContains(run.status().message(),
                                "tasks[1].executor: task 'other'"))
      << run.status();
}

TEST_F(EngineExecutorsTest, AnExecutorFieldOfTheWrongTypeIsADecodeError) {
  pipeline::LoadedPipeline loaded = pipeline::LoadPipelineText(R"(name: bad
tasks:
  - name: t
    executor: [fake]
    run: {command: [produce]}
)",
                                                               "p.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(absl::StartsWith(loaded.errors[0].ToString(), "p.yaml:4:15"))
      << loaded.errors[0].ToString();
}

TEST(EngineExecutorsCreateTest, AnUnknownDefaultOrNoExecutorIsRefused) {
  EngineOptions options;
  options.store_dir = absl::StrCat(getenv("TEST_TMPDIR"), "/create");
  auto none = Engine::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(none.status())) << none.status();
  options.executors = {std::make_shared<FakeExecutor>()};
  options.default_executor = "nope";
  auto unknown = Engine::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(unknown.status())) << unknown.status();
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "(known: fake)"))
      << unknown.status();
}

}  // namespace
}  // namespace kiln
