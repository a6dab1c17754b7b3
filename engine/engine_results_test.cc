// Task results end to end in the local sandbox: a command writes
// $KILN_RESULTS/NAME; a later task reads it in its command, its env and a
// `when`; the values are recorded with the run and on the task's final
// event; a cache hit yields the same results; a bad result fails the task.
#include <stdlib.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/engine.h"
#include "engine/pipeline/loader.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

class EngineResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(getenv("TEST_TMPDIR"), "/er-", cas::RandomSuffix());
    ASSERT_TRUE(cas::MakeDirs(root_ + "/src").ok());
    LocalSandboxOptions sandbox;
    sandbox.hidden_paths = DefaultHiddenPaths("");
    sandbox.cgroups = LocalSandboxOptions::Cgroups::kOff;
    auto local = LocalSandboxExecutor::Create(sandbox);
    ASSERT_TRUE(local.ok()) << local.status();
    EngineOptions options;
    options.store_dir = root_ + "/store";
    options.executors = {std::move(*local)};
    options.retry_backoff = absl::Milliseconds(1);
    auto engine = Engine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }
  void TearDown() override {
    engine_.reset();
    ASSERT_TRUE(cas::RemoveTree(root_).ok());
  }

  absl::StatusOr<v1::Run> Run(
      const std::string& yaml, std::vector<v1::RunEvent>* events = nullptr,
      const std::map<std::string, std::string>& params = {}) {
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineText(yaml, "pipeline.yaml");
    if (!loaded.ok()) {
      return absl::InvalidArgumentError(loaded.errors[0].ToString());
    }
    RunRequest req;
    req.pipeline = std::move(loaded.pipeline);
    req.source_dir = root_ + "/src";
    for (const auto& [k, v] : params) (*req.trigger.mutable_params())[k] = v;
    auto run = engine_->Submit(std::move(req));
    if (!run.ok()) return run.status();
    absl::StatusOr<v1::Run> done = (*run)->Wait();
    if (done.ok() && events != nullptr) {
      auto all = engine_->ReadEvents(done->id(), 0, 10000);
      if (!all.ok()) return all.status();
      *events = *std::move(all);
    }
    return done;
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  std::string Output(const v1::Run& run, const std::string& task,
                     const std::string& artifact) {
    auto store = cas::ArtifactStore::Open(root_ + "/store");
    EXPECT_TRUE(store.ok());
    auto digest = cas::Digest::Parse(Task(run, task).outputs().at(artifact));
    EXPECT_TRUE(digest.ok());
    std::string dir = absl::StrCat(root_, "/out-", cas::RandomSuffix());
    EXPECT_TRUE((*store)->Unstash(*digest, dir).ok());
    absl::StatusOr<std::string> text = cas::ReadSmallFile(dir + "/out.txt");
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? *text : "";
  }

  std::string root_;
  std::unique_ptr<Engine> engine_;
};

constexpr char kFlow[] = R"(
name: results
tasks:
  - name: version
    run:
      command: [/bin/sh, -c, "echo 1.4.2 > $KILN_RESULTS/version; printf stable > $KILN_RESULTS/channel"]
      results: [version, channel]
  - name: build
    needs: [version]
    run:
      command: [/bin/sh, -c, "echo \"$1 $CHANNEL\" > out.txt", sh, "v${tasks.version.results.version}"]
      env: {CHANNEL: "${tasks.version.results.channel}"}
    outputs: [{artifact: built, paths: [out.txt]}]
  - name: publish-stable
    needs: [build]
    when: {result: {task: version, name: channel, equals: stable}}
    run: {command: [/bin/true]}
  - name: publish-beta
    needs: [build]
    when: {result: {task: version, name: channel, equals: beta}}
    run: {command: [/bin/true]}
)";

TEST_F(EngineResultsTest, ResultsFlowIntoCommandEnvAndConditions) {
  std::vector<v1::RunEvent> events;
  absl::StatusOr<v1::Run> run = Run(kFlow, &events);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->state(), v1::RUN_SUCCEEDED) << run->reason();
  const v1::TaskStatus& version = Task(*run, "version");
  EXPECT_EQ(version.results().at("results.version"), "1.4.2");
  EXPECT_EQ(version.results().at("results.channel"), "stable");
  EXPECT_EQ(Output(*run, "build", "built"), "v1.4.2 stable\n");
  EXPECT_EQ(Task(*run, "publish-stable").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(*run, "publish-beta").state(), v1::TASK_SKIPPED);
  EXPECT_THAT(Task(*run, "publish-beta").reason(),
              HasSubstr("result channel of task version 'stable' is not "
                        "'beta'"));
  // The final event of `version` carries its results.
  bool seen = false;
  for (const v1::RunEvent& e : events) {
    if (e.has_task_state() && e.task_state().task() == "version" &&
        e.task_state().state() == v1::TASK_SUCCEEDED) {
      EXPECT_EQ(e.task_state().results().at("results.version"), "1.4.2");
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
  // Recorded durably: the run as read back from the store has them.
  auto stored = engine_->GetRun(run->id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(Task(*stored, "version").results().at("results.channel"), "stable");

  // Again: every task is a cache hit, with the same results, and the
  // consumers' keys (with the substituted values) hit too.
  absl::StatusOr<v1::Run> again = Run(kFlow);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->state(), v1::RUN_SUCCEEDED) << again->reason();
  EXPECT_EQ(Task(*again, "version").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(*again, "version").results().at("results.version"), "1.4.2");
  EXPECT_EQ(Task(*again, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(*again, "publish-stable").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(*again, "publish-beta").state(), v1::TASK_SKIPPED);
}

TEST_F(EngineResultsTest, TheConsumersKeyIncludesTheValue) {
  auto flow = [](const std::string& value) {
    return absl::StrCat(R"(
name: key
tasks:
  - name: version
    run: {command: [/bin/sh, -c, "echo )",
                        value, R"( > $KILN_RESULTS/v"], results: [v]}
  - name: use
    needs: [version]
    run: {command: [/bin/echo, "${tasks.version.results.v}"]}
)");
  };
  absl::StatusOr<v1::Run> a = Run(flow("one"));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->state(), v1::RUN_SUCCEEDED) << a->reason();
  absl::StatusOr<v1::Run> b = Run(flow("two"));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->state(), v1::RUN_SUCCEEDED) << b->reason();
  EXPECT_EQ(Task(*b, "use").state(), v1::TASK_SUCCEEDED);
  EXPECT_NE(Task(*a, "use").cache_key(), Task(*b, "use").cache_key());
}

TEST_F(EngineResultsTest, AResultHoldingASecretIsRefused) {
  absl::StatusOr<v1::Run> run = Run(R"(
name: secret
params: [{name: token, secret: true}]
tasks:
  - name: leak
    run:
      command: [/bin/sh, -c, "echo \"tag-$TOKEN\" > $KILN_RESULTS/tag"]
      env: {TOKEN: "${params.token}"}
      results: [tag]
)",
                                    nullptr, {{"token", "hunter2-s3cret"}});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_FAILED);
  const v1::TaskStatus& leak = Task(*run, "leak");
  EXPECT_EQ(leak.state(), v1::TASK_FAILED);
  EXPECT_THAT(leak.reason(), HasSubstr("contains the value of a secret"));
  EXPECT_THAT(leak.reason(), ::testing::Not(HasSubstr("hunter2")));
  EXPECT_TRUE(leak.results().empty());
}

struct BadCase {
  const char* name;
  const char* script;
  const char* reason;
};

class EngineBadResultsTest : public EngineResultsTest,
                             public ::testing::WithParamInterface<BadCase> {};

TEST_P(EngineBadResultsTest, FailsTheTaskWithAClearReason) {
  const BadCase& c = GetParam();
  std::string yaml = absl::StrCat(R"(
name: bad
tasks:
  - name: version
    run:
      command: [/bin/sh, -c, ')",
                                  c.script, R"(']
      results: [version]
  - name: after
    needs: [version]
    run: {command: [/bin/echo, "${tasks.version.results.version}"]}
)");
  absl::StatusOr<v1::Run> run = Run(yaml);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_FAILED);
  const v1::TaskStatus& version = Task(*run, "version");
  EXPECT_EQ(version.state(), v1::TASK_FAILED);
  EXPECT_THAT(version.reason(), HasSubstr(c.reason)) << c.name;
  EXPECT_TRUE(version.results().empty());
  EXPECT_NE(Task(*run, "after").state(), v1::TASK_SUCCEEDED);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EngineBadResultsTest,
    ::testing::Values(
        BadCase{"too_large",
                "head -c 5000 /dev/zero | tr \"\\\\0\" x > "
                "$KILN_RESULTS/version",
                "'version' has 5000 bytes; a result may have at most 4096"},
        BadCase{"missing", "true", "declared result 'version' was not written"},
        BadCase{"undeclared",
                "echo 1 > $KILN_RESULTS/version; echo x > "
                "$KILN_RESULTS/other",
                "other is not a declared result"},
        BadCase{"symlink", "ln -s /etc/passwd $KILN_RESULTS/version",
                "'version' is a symlink"},
        BadCase{"not_utf8", "printf \"\\\\377\" > $KILN_RESULTS/version",
                "'version' is not valid UTF-8"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return std::string(info.param.name);
    });

}  // namespace
}  // namespace kiln
