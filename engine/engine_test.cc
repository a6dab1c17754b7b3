// Runs, the cache, params and secrets, timeouts, cancel and retry,
// validation, and rendering through the engine.
#include "engine/engine.h"

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
#include "base/mutex.h"
#include "base/testing/files.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/engine_test_fixture.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/plan.h"
#include "engine/pipeline/validate.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
namespace kiln {
namespace {

namespace fs = std::filesystem;
using engine_testing::BuildTestPipeline;
using engine_testing::EngineTest;
using engine_testing::MakeEngine;
using engine_testing::ReadFile;
using engine_testing::TempDir;
using engine_testing::WriteFile;

TEST_F(EngineTest, RunsRecordsAndReplaysEvents) {
  std::vector<v1::RunEvent> events;
  v1::Run run = Run(BuildTestPipeline(), {}, &events);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(run, "test").state(), v1::TASK_SUCCEEDED);
  EXPECT_TRUE(
      absl::StartsWith(Task(run, "build").outputs().at("app"), "sha256:"));
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), i + 1);
    EXPECT_EQ(events[i].run_id(), run.id());
  }
  EXPECT_EQ(events.back().run_state().state(), v1::RUN_SUCCEEDED);
  bool saw_log = false;
  for (const auto& e : events) {
    if (e.has_log() && e.log().text() == "make build") saw_log = true;
  }
  EXPECT_TRUE(saw_log);
  // The test task saw the app artifact unstashed in its workspace, and the
  // attempt number in its environment.
  auto reqs = executor_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].env().at("KILN_ATTEMPT"), "1");
  // A subscription from the middle resumes exactly after that sequence.
  auto handle = engine_->Find(run.id());
  ASSERT_TRUE(handle.ok());
  std::vector<uint64_t> seqs;
  (*handle)->Subscribe(
      3, [&](const v1::RunEvent& e) { seqs.push_back(e.sequence()); });
  ASSERT_EQ(seqs.size(), events.size() - 3);
  EXPECT_EQ(seqs.front(), 4u);
}

TEST_F(EngineTest, SecondRunIsServedFromCacheAndOnlyChangesRerun) {
  v1::Run first = Run(BuildTestPipeline());
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  EXPECT_EQ(Executed(), 2u);

  v1::Run second = Run(BuildTestPipeline());
  EXPECT_EQ(Task(second, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(second, "test").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), 2u) << "nothing may execute on a full cache hit";
  EXPECT_EQ(Task(second, "build").outputs().at("app"),
            Task(first, "build").outputs().at("app"));

  // Only mtimes change: still a hit.
  fs::last_write_time(source_ + "/src/main.c",
                      fs::file_time_type::clock::now() + std::chrono::hours(1));
  v1::Run touched = Run(BuildTestPipeline());
  EXPECT_EQ(Task(touched, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), 2u);

  // One byte of the source changes: build reruns; its output changes, so
  // test reruns too.
  WriteFile(source_ + "/src/main.c", "int main() { return 1; }\n");
  v1::Run changed = Run(BuildTestPipeline());
  EXPECT_EQ(Task(changed, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(changed, "test").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Executed(), 4u);

  // A param the test task uses changes: only test reruns.
  v1::Trigger t;
  (*t.mutable_params())["greeting"] = "hello";
  v1::Run param = Run(BuildTestPipeline(), t);
  EXPECT_EQ(Task(param, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(param, "test").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Executed(), 5u);
}

// A host task's key holds the digest of the binary argv[0] resolves to,
// by absolute path or on the task's PATH: the same bytes stay a hit,
// other bytes (of the same size) run the task again.
TEST_F(EngineTest, AHostTaskRunsAgainWhenTheBinaryItInvokesChanges) {
  const std::string bin_dir = TempDir("bin_" + Name());
  const std::string tool = bin_dir + "/tool";
  WriteFile(tool, "#!/bin/sh\necho one\n");
  ASSERT_EQ(chmod(tool.c_str(), 0755), 0);
  auto ok = [](const v1::ExecRequest&) { return FakeScript(); };
  executor_->On(tool, ok);
  executor_->On("tool", ok);
  v1::Pipeline p;
  p.set_name("bin");
  v1::Task* absolute = p.add_tasks();
  absolute->set_name("absolute");
  absolute->mutable_run()->add_command(tool);
  v1::Task* on_path = p.add_tasks();
  on_path->set_name("on_path");
  on_path->mutable_run()->add_command("tool");
  auto* path = on_path->mutable_run()->add_env();
  path->set_name("PATH");
  path->set_value(bin_dir);

  v1::Run first = Run(p);
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED);
  EXPECT_EQ(Executed(), 2u);
  v1::Run same = Run(p);
  EXPECT_EQ(Task(same, "absolute").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(same, "on_path").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), 2u);

  WriteFile(tool, "#!/bin/sh\necho two\n");
  v1::Run changed = Run(p);
  EXPECT_EQ(Task(changed, "absolute").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(changed, "on_path").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Executed(), 4u);
  EXPECT_NE(Task(changed, "absolute").cache_key(),
            Task(first, "absolute").cache_key());

  v1::Run again = Run(p);
  EXPECT_EQ(Task(again, "absolute").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(again, "on_path").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), 4u);
}

TEST_F(EngineTest, IncrementalOutputsAreIdenticalToACleanRun) {
  // Incremental: v1, then v2 on the same store.
  Run(BuildTestPipeline());
  WriteFile(source_ + "/src/main.c", "int main() { return 2; }\n");
  v1::Run incremental = Run(BuildTestPipeline());
  ASSERT_EQ(incremental.state(), v1::RUN_SUCCEEDED);
  // Clean: v2 alone on a fresh store, other umask.
  auto clean_engine = MakeEngine(TempDir("clean_store"), executor_);
  ASSERT_NE(clean_engine, nullptr);
  mode_t old_umask = umask(077);
  RunRequest req;
  req.pipeline = BuildTestPipeline();
  req.source_dir = source_;
  auto run = clean_engine->Submit(req);
  ASSERT_TRUE(run.ok());
  v1::Run clean = (*run)->Wait();
  umask(old_umask);
  ASSERT_EQ(clean.state(), v1::RUN_SUCCEEDED);
  EXPECT_EQ(Task(clean, "build").outputs().at("app"),
            Task(incremental, "build").outputs().at("app"));
  EXPECT_EQ(Task(clean, "build").cache_key(),
            Task(incremental, "build").cache_key());
}

TEST_F(EngineTest, ParamsArePassedAsDataNeverShellText) {
  v1::Trigger t;
  std::string evil = "x; rm -rf / $(touch /tmp/pwned) `id`\nnext";
  (*t.mutable_params())["greeting"] = evil;
  v1::Run run = Run(BuildTestPipeline(), t);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED);
  auto reqs = executor_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  ASSERT_EQ(reqs[1].argv_size(), 3);
  EXPECT_EQ(reqs[1].argv(2), evil);
}

TEST_F(EngineTest, SecretsAreMaskedInLogsAndHmacedInKeys) {
  v1::Pipeline p = BuildTestPipeline();
  p.mutable_params(0)->set_secret(true);
  // Secrets may only reach a task through its environment.
  p.mutable_tasks(1)->mutable_run()->mutable_command()->RemoveLast();
  auto* env = p.mutable_tasks(1)->mutable_run()->add_env();
  env->set_name("TOKEN");
  env->set_value("${params.greeting}");
  v1::Trigger t;
  (*t.mutable_params())["greeting"] = "s3cr3t-token";
  std::vector<v1::RunEvent> events;
  v1::Run run = Run(p, t, &events);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  for (const auto& e : events) {
    EXPECT_EQ(e.DebugString().find("s3cr3t-token"), std::string::npos);
  }
  bool masked = false;
  for (const auto& e : events) {
    if (e.has_log() && e.log().text() == "***") masked = true;
  }
  EXPECT_TRUE(masked);
  auto latest = engine_->store().cache().LatestForTask("demo", "test");
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  for (const auto& c : (*latest)->components) {
    EXPECT_EQ(c.value_digest.find("s3cr3t"), std::string::npos) << c.name;
  }
  // The log files on disk are masked too.
  for (const auto& entry : fs::recursive_directory_iterator(store_ + "/logs")) {
    if (entry.is_regular_file()) {
      EXPECT_EQ(ReadFile(entry.path()).find("s3cr3t-token"), std::string::npos);
    }
  }
}

TEST_F(EngineTest, EncodedSecretFormsAreMasked) {
  v1::Pipeline p = BuildTestPipeline();
  p.mutable_params(0)->set_secret(true);
  p.mutable_tasks(1)->mutable_run()->set_command(1, "forms");
  p.mutable_tasks(1)->mutable_run()->mutable_command()->RemoveLast();
  auto* env = p.mutable_tasks(1)->mutable_run()->add_env();
  env->set_name("TOKEN");
  env->set_value("${params.greeting}");
  // Quotes, a backslash and bytes whose base64 differs between the plain
  // and URL-safe alphabets (">?>" encodes with '+' and '/').
  const std::string secret = "s3\"cr\\et>?>~~tok";
  ASSERT_NE(absl::Base64Escape(secret), absl::WebSafeBase64Escape(secret));
  v1::Trigger t;
  (*t.mutable_params())["greeting"] = secret;
  std::vector<v1::RunEvent> events;
  v1::Run run = Run(p, t, &events);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  std::vector<std::string> lines;
  for (const auto& e : events) {
    if (e.has_log() && e.log().task() == "test")
      lines.push_back(e.log().text());
  }
  EXPECT_THAT(lines, ::testing::Contains("before *** after"));
  EXPECT_THAT(lines, ::testing::Contains("b64=***;"));
  EXPECT_THAT(lines, ::testing::Contains("url=***;"));
  EXPECT_THAT(lines, ::testing::Contains("{\"token\": \"***\"}"));
  for (const auto& e : events) {
    std::string text = e.DebugString();
    EXPECT_EQ(text.find("~~tok"), std::string::npos) << text;
    EXPECT_EQ(text.find(absl::Base64Escape(secret)), std::string::npos);
    EXPECT_EQ(text.find(absl::WebSafeBase64Escape(secret)), std::string::npos);
  }
}

TEST_F(EngineTest, TaskTimeoutReachesTheExecutorAndTimesTheTaskOut) {
  v1::Pipeline p = BuildTestPipeline();
  p.mutable_tasks(1)->mutable_run()->set_command(1, "hang");
  p.mutable_tasks(1)->mutable_hints()->mutable_timeout()->set_nanos(300000000);
  absl::Time start = absl::Now();
  v1::Run run = Run(p);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "test").state(), v1::TASK_TIMED_OUT);
  EXPECT_THAT(Task(run, "test").reason(), ::testing::HasSubstr("timed out"));
  auto reqs = executor_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].limits().timeout().nanos(), 300000000);
  EXPECT_EQ(reqs[1].limits().timeout().seconds(), 0);
  // The build task had no timeout: none is passed on.
  EXPECT_FALSE(reqs[0].limits().has_timeout());
}

TEST_F(EngineTest, FinallyTimeoutBoundsTheFinallyTasks) {
  v1::Pipeline p = BuildTestPipeline();
  v1::Task* cleanup = p.add_finally();
  cleanup->set_name("cleanup");
  cleanup->mutable_run()->add_command("make");
  cleanup->mutable_run()->add_command("hang");
  p.mutable_options()->mutable_finally_timeout()->set_nanos(300000000);
  absl::Time start = absl::Now();
  v1::Run run = Run(p);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(Task(run, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(run, "test").state(), v1::TASK_SUCCEEDED);
  EXPECT_TRUE(Task(run, "cleanup").state() == v1::TASK_TIMED_OUT ||
              Task(run, "cleanup").state() == v1::TASK_CANCELLED)
      << v1::TaskState_Name(Task(run, "cleanup").state());
}

TEST_F(EngineTest, FailureFailsTheRunAndRetryReusesSuccesses) {
  v1::Pipeline p = BuildTestPipeline();
  p.mutable_tasks(1)->mutable_run()->set_command(1, "fail");
  p.mutable_tasks(1)->mutable_hints()->set_retries(1);
  v1::Run run = Run(p);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "test").state(), v1::TASK_FAILED);
  EXPECT_EQ(Task(run, "test").attempts(), 2u);
  EXPECT_EQ(Task(run, "test").exit_code(), 2);
  size_t before = Executed();
  auto retry = engine_->Retry(run.id());
  ASSERT_TRUE(retry.ok()) << retry.status();
  v1::Run again = (*retry)->Wait();
  EXPECT_NE(again.id(), run.id());
  EXPECT_EQ(Task(again, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(again, "test").state(), v1::TASK_FAILED);
  EXPECT_EQ(Executed(), before + 2);  // only test's two attempts
}

TEST_F(EngineTest, CancelStopsRunningTasksAndRunsFinally) {
  executor_->On("sleep", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Stdout("sleeping").Delay(absl::Seconds(30));
    return s;
  });
  v1::Pipeline p;
  p.set_name("cancel");
  v1::Task* t = p.add_tasks();
  t->set_name("long");
  t->mutable_run()->add_command("sleep");
  v1::Task* f = p.add_finally();
  f->set_name("cleanup");
  f->mutable_run()->add_command("make");
  f->mutable_run()->add_command("clean");
  RunRequest req;
  req.pipeline = p;
  auto run = engine_->Submit(req);
  ASSERT_TRUE(run.ok());
  absl::Notification running;
  (*run)->Subscribe(0, [&](const v1::RunEvent& e) {
    if (e.has_log() && e.log().text() == "sleeping" &&
        !running.HasBeenNotified()) {
      running.Notify();
    }
  });
  ASSERT_TRUE(running.WaitForNotificationWithTimeout(absl::Seconds(20)));
  ASSERT_TRUE(engine_->Cancel((*run)->id(), "user asked").ok());
  v1::Run result = (*run)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_CANCELLED);
  EXPECT_EQ(Task(result, "long").state(), v1::TASK_CANCELLED);
  EXPECT_EQ(Task(result, "cleanup").state(), v1::TASK_SUCCEEDED);
}

TEST_F(EngineTest, InvalidPipelineIsRejectedBeforeAnythingRuns) {
  v1::Pipeline p = BuildTestPipeline();
  p.mutable_tasks(1)->add_needs("nope");
  RunRequest req;
  req.pipeline = p;
  auto run = engine_->Submit(req);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(run.status().message().find("nope"), std::string::npos);
  EXPECT_EQ(Executed(), 0u);
}

// Submit validates and plans once; the run executes that plan: no second
// plan, no `when` evaluated again when the run starts.
TEST_F(EngineTest, ARunIsPlannedOnceAndItsWhensEvaluatedOnce) {
  v1::Pipeline p = BuildTestPipeline();
  p.mutable_tasks(1)->mutable_when()->mutable_branch()->set_pattern("main");
  v1::Trigger trigger;
  trigger.set_branch("feature");
  const int64_t plans = pipeline::PlansComputedForTesting();
  const int64_t whens = pipeline::ConditionsEvaluatedForTesting();
  v1::Run run = Run(p, trigger);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "test").state(), v1::TASK_SKIPPED);
  EXPECT_EQ(Task(run, "test").reason(), "branch 'feature' does not match main");
  EXPECT_EQ(pipeline::PlansComputedForTesting() - plans, 1);
  EXPECT_EQ(pipeline::ConditionsEvaluatedForTesting() - whens, 1);
}

// No silent success: a task this kiln cannot execute refuses the run
// before anything runs, unless the pipeline opts to skip such tasks.
TEST_F(EngineTest, UnsupportedTasksAreRefusedUnlessThePipelineSkipsThem) {
  v1::Pipeline p = BuildTestPipeline();
  v1::Task* image = p.add_tasks();
  image->set_name("image");
  image->add_needs("test");
  image->mutable_run()->set_image("golang:1.22");
  image->mutable_run()->add_command("go");
  RunRequest req;
  req.pipeline = p;
  auto refused = engine_->Submit(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("run.image 'golang:1.22' cannot run here"));
  EXPECT_EQ(Executed(), 0u);

  p.mutable_options()->set_unsupported(v1::SKIP);
  v1::Run run = Run(p);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "image").state(), v1::TASK_SKIPPED);
  EXPECT_THAT(Task(run, "image").reason(),
              ::testing::HasSubstr("run.image 'golang:1.22' cannot run here"));
}

// A loaded pipeline is validated in full once, by the loader; Submit then
// runs only the checks that depend on its executors, and still refuses
// what they cannot run, at FILE:LINE:COL. A pipeline changed after the
// load is validated in full again.
TEST_F(EngineTest, ALoadedPipelineIsValidatedOnceAndSubmitChecksCapabilities) {
  const std::string yaml =
      "name: demo\n"
      "tasks:\n"
      "  - name: build\n"
      "    run: {command: [make, build]}\n"
      "  - name: go\n"
      "    needs: [build]\n"
      "    run: {image: 'golang:1.22', command: [go, test]}\n";
  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineText(yaml, "dir/p.yaml");
  ASSERT_TRUE(loaded.ok()) << pipeline::JoinDiagnostics(loaded.errors);
  ASSERT_NE(loaded.validation, nullptr);
  RunRequest req;
  req.pipeline = loaded.pipeline;
  req.source_map = loaded.source_map;
  req.validation = loaded.validation;
  req.source_dir = source_;
  const int64_t full = pipeline::FullValidationsForTesting();
  auto refused = engine_->Submit(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(pipeline::FullValidationsForTesting(), full);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  // The fake executor runs no images.
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::StartsWith("dir/p.yaml:7:18: task 'go': run.image "
                                    "'golang:1.22' cannot run here"));
  EXPECT_EQ(Executed(), 0u);

  // Changed after the load: not covered, every check runs again.
  req.pipeline.mutable_tasks(1)->mutable_run()->set_image("host");
  req.pipeline.mutable_tasks(1)->add_needs("nope");
  auto invalid = engine_->Submit(req);
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(pipeline::FullValidationsForTesting(), full + 1);
  EXPECT_THAT(std::string(invalid.status().message()),
              ::testing::HasSubstr("dir/p.yaml:6:12: task 'go' needs "
                                   "unknown task 'nope'"));
  EXPECT_EQ(Executed(), 0u);

  // Runnable here: submitted without a second full validation.
  pipeline::LoadedPipeline host = pipeline::LoadPipelineText(
      absl::StrReplaceAll(
          yaml, {{"'golang:1.22'", "host"}, {"go, test", "make, test"}}),
      "dir/p.yaml");
  ASSERT_TRUE(host.ok()) << pipeline::JoinDiagnostics(host.errors);
  req.pipeline = host.pipeline;
  req.source_map = host.source_map;
  req.validation = host.validation;
  const int64_t full_before_run = pipeline::FullValidationsForTesting();
  auto handle = engine_->Submit(req);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(pipeline::FullValidationsForTesting(), full_before_run);
  v1::Run run = (*handle)->Wait();
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Executed(), 2u);
}

// A deploy whose cluster cannot be found (no kubeconfig) is refused before
// anything runs, or skipped with the reason when the pipeline says so:
// never attempted and failed halfway through a run.
TEST_F(EngineTest, ADeployWithoutAClusterIsRefusedBeforeAnythingRuns) {
  const std::string kubeconfig = TempDir("nokube") + "/missing-kubeconfig";
  auto engine = MakeEngine(
      TempDir("store_nocluster"), executor_,
      [&](EngineOptions& options) { options.kubeconfig_paths = {kubeconfig}; });
  ASSERT_NE(engine, nullptr);
  v1::Pipeline p = BuildTestPipeline();
  v1::Task* deploy = p.add_tasks();
  deploy->set_name("deploy");
  deploy->add_needs("build");
  deploy->mutable_deploy()->set_environment("stage");
  deploy->mutable_deploy()->set_manifests("app");
  RunRequest req;
  req.pipeline = p;
  req.source_dir = source_;
  auto refused = engine->Submit(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("deploy has no cluster"));
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("missing-kubeconfig"));
  EXPECT_EQ(Executed(), 0u);

  p.mutable_options()->set_unsupported(v1::SKIP);
  req.pipeline = p;
  auto handle = engine->Submit(req);
  ASSERT_TRUE(handle.ok()) << handle.status();
  v1::Run run = (*handle)->Wait();
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_SKIPPED);
  EXPECT_THAT(Task(run, "deploy").reason(),
              ::testing::HasSubstr("deploy has no cluster"));
}

// A deploy whose context is a ${...} is checked once resolved: a cluster
// missing then fails the task (the pipeline did not opt to skip), and the
// run fails with it; under `unsupported: skip` it is skipped.
TEST_F(EngineTest, ADeployWhoseClusterIsMissingAtRunTimeFailsUnlessSkipped) {
  const std::string kubeconfig = TempDir("nokube_rt") + "/missing-kubeconfig";
  auto engine = MakeEngine(
      TempDir("store_nocluster_rt"), executor_,
      [&](EngineOptions& options) { options.kubeconfig_paths = {kubeconfig}; });
  ASSERT_NE(engine, nullptr);
  v1::Pipeline p = BuildTestPipeline();
  auto* param = p.add_params();
  param->set_name("cluster");
  param->set_default_("prod-cluster");
  v1::Task* deploy = p.add_tasks();
  deploy->set_name("deploy");
  deploy->add_needs("build");
  deploy->mutable_deploy()->set_environment("stage");
  deploy->mutable_deploy()->set_manifests("app");
  deploy->mutable_deploy()->set_context("${params.cluster}");
  RunRequest req;
  req.pipeline = p;
  req.source_dir = source_;
  auto handle = engine->Submit(req);
  ASSERT_TRUE(handle.ok()) << handle.status();
  v1::Run run = (*handle)->Wait();
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_FAILED);
  EXPECT_THAT(Task(run, "deploy").reason(),
              ::testing::HasSubstr("deploy has no cluster"));

  p.mutable_options()->set_unsupported(v1::SKIP);
  req.pipeline = p;
  handle = engine->Submit(req);
  ASSERT_TRUE(handle.ok()) << handle.status();
  run = (*handle)->Wait();
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_SKIPPED);
  EXPECT_THAT(Task(run, "deploy").reason(),
              ::testing::HasSubstr("deploy has no cluster"));
}

TEST_F(EngineTest, RenderTaskRendersAnOverlayAsAnArtifact) {
  WriteFile(source_ + "/deploy/kustomization.yaml",
            "resources: [deployment.yaml]\n");
  WriteFile(source_ + "/deploy/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
            "spec:\n  template:\n    spec:\n      containers:\n"
            "      - name: web\n        image: web\n");
  v1::Pipeline p;
  p.set_name("render");
  v1::Task* t = p.add_tasks();
  t->set_name("manifests");
  auto* spec = t->mutable_render();
  spec->mutable_kustomization()->set_artifact("source");
  spec->mutable_kustomization()->set_path("deploy");
  spec->set_namespace_("web-${trigger.branch_slug}");
  auto* image = spec->add_images();
  image->set_name("web");
  image->set_new_tag("v2");
  v1::Trigger trigger;
  trigger.set_branch("Feature/Login");
  v1::Run run = Run(p, trigger);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  const v1::TaskStatus& st = Task(run, "manifests");
  ASSERT_EQ(st.outputs().count("manifests"), 1u);
  EXPECT_EQ(st.results().at("digest"), st.outputs().at("manifests"));
  auto artifacts = cas::ArtifactStore::Open(store_);
  ASSERT_TRUE(artifacts.ok());
  auto tree = cas::Digest::Parse(st.outputs().at("manifests"));
  ASSERT_TRUE(tree.ok());
  std::string out = TempDir("rendered") + "/x";
  ASSERT_TRUE((*artifacts)->Unstash(*tree, out).ok());
  std::string yaml = ReadFile(out + "/manifests.yaml");
  EXPECT_NE(yaml.find("namespace: web-feature-login"), std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("image: web:v2"), std::string::npos) << yaml;
  EXPECT_EQ(Executed(), 0u) << "render runs in the engine, not the executor";
  // Memoized like any task.
  v1::Run again = Run(p, trigger);
  EXPECT_EQ(Task(again, "manifests").state(), v1::TASK_CACHED);
  // The kustomization's artifact is part of the key: a changed overlay is
  // rendered again, never served the old manifests.
  WriteFile(source_ + "/deploy/kustomization.yaml",
            "resources: [deployment.yaml]\nnamePrefix: new-\n");
  v1::Run changed = Run(p, trigger);
  const v1::TaskStatus& re = Task(changed, "manifests");
  ASSERT_EQ(re.state(), v1::TASK_SUCCEEDED) << re.reason();
  EXPECT_NE(re.outputs().at("manifests"), st.outputs().at("manifests"));
}

}  // namespace
}  // namespace kiln
