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
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/plan.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(base ? base : "/tmp", "/engine_test_", name, "_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// build: "make build" writes out/app from src/main.c; test: "make test".
v1::Pipeline BuildTestPipeline() {
  v1::Pipeline p;
  p.set_name("demo");
  auto* param = p.add_params();
  param->set_name("greeting");
  param->set_default_("hi");
  v1::Task* build = p.add_tasks();
  build->set_name("build");
  build->mutable_run()->add_command("make");
  build->mutable_run()->add_command("build");
  build->add_inputs()->set_artifact("source");
  auto* out = build->add_outputs();
  out->set_artifact("app");
  out->add_paths("out/app");
  v1::Task* test = p.add_tasks();
  test->set_name("test");
  test->add_needs("build");
  test->mutable_run()->add_command("make");
  test->mutable_run()->add_command("test");
  test->mutable_run()->add_command("${params.greeting}");
  test->add_inputs()->set_artifact("app");
  return p;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = TempDir("store_" + Name());
    source_ = TempDir("src_" + Name());
    WriteFile(source_ + "/src/main.c", "int main() { return 0; }\n");
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("make", [](const v1::ExecRequest& req) {
      FakeScript s;
      std::string target = req.argv(1);
      s.Stdout("make " + target);
      if (target == "build") {
        s.Do([](const v1::ExecRequest& r) {
          std::string src = ReadFile(r.workspace() + "/src/main.c");
          WriteFile(r.workspace() + "/out/app", "binary of " + src);
        });
      }
      if (target == "test" && req.argv_size() > 2) s.Stdout(req.argv(2));
      if (target == "test" && req.env().count("TOKEN")) {
        s.Stdout(req.env().at("TOKEN"));
      }
      if (target == "forms" && req.env().count("TOKEN")) {
        // The secret as a task might print it: mid-line, encoded, escaped.
        const std::string& v = req.env().at("TOKEN");
        s.Stdout("before " + v + " after");
        s.Stdout("b64=" + absl::Base64Escape(v) + ";");
        s.Stdout("url=" + absl::WebSafeBase64Escape(v) + ";");
        s.Stdout("{\"token\": \"" +
                 absl::StrReplaceAll(
                     v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}}) +
                 "\"}");
      }
      if (target == "hang") s.Delay(absl::Seconds(60));
      if (target == "fail") s.Exit(2);
      return s;
    });
    EngineOptions options;
    options.store_dir = store_;
    options.executor = executor_;
    options.retry_backoff = absl::Milliseconds(1);
    auto engine = Engine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  std::string Name() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  v1::Run Run(v1::Pipeline p, v1::Trigger trigger = {},
              std::vector<v1::RunEvent>* events = nullptr) {
    RunRequest req;
    req.pipeline = std::move(p);
    req.source_dir = source_;
    req.trigger = std::move(trigger);
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    v1::Run result = (*run)->Wait();
    if (events != nullptr) {
      (*run)->Subscribe(
          0, [events](const v1::RunEvent& e) { events->push_back(e); });
    }
    return result;
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  size_t Executed() { return executor_->requests().size(); }

  std::string store_, source_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

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

TEST_F(EngineTest, IncrementalOutputsAreIdenticalToACleanRun) {
  // Incremental: v1, then v2 on the same store.
  Run(BuildTestPipeline());
  WriteFile(source_ + "/src/main.c", "int main() { return 2; }\n");
  v1::Run incremental = Run(BuildTestPipeline());
  ASSERT_EQ(incremental.state(), v1::RUN_SUCCEEDED);
  // Clean: v2 alone on a fresh store, other umask.
  EngineOptions options;
  options.store_dir = TempDir("clean_store");
  options.executor = executor_;
  auto clean_engine = Engine::Create(options);
  ASSERT_TRUE(clean_engine.ok());
  mode_t old_umask = umask(077);
  RunRequest req;
  req.pipeline = BuildTestPipeline();
  req.source_dir = source_;
  auto run = (*clean_engine)->Submit(req);
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
  image->mutable_deploy()->set_environment("stage");
  image->mutable_deploy()->set_overlay("deploy");
  RunRequest req;
  req.pipeline = p;
  auto refused = engine_->Submit(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("deploy.overlay is not implemented"));
  EXPECT_EQ(Executed(), 0u);

  p.mutable_options()->set_unsupported(v1::SKIP);
  v1::Run run = Run(p);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "image").state(), v1::TASK_SKIPPED);
  EXPECT_THAT(Task(run, "image").reason(),
              ::testing::HasSubstr("deploy.overlay is not implemented yet"));
}

// A deploy whose cluster cannot be found (no kubeconfig) is refused before
// anything runs, or skipped with the reason when the pipeline says so:
// never attempted and failed halfway through a run.
TEST_F(EngineTest, ADeployWithoutAClusterIsRefusedBeforeAnythingRuns) {
  EngineOptions options;
  options.store_dir = TempDir("store_nocluster");
  options.executor = executor_;
  options.kubeconfig_paths = {TempDir("nokube") + "/missing-kubeconfig"};
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  v1::Pipeline p = BuildTestPipeline();
  v1::Task* deploy = p.add_tasks();
  deploy->set_name("deploy");
  deploy->add_needs("build");
  deploy->mutable_deploy()->set_environment("stage");
  deploy->mutable_deploy()->set_manifests("app");
  RunRequest req;
  req.pipeline = p;
  req.source_dir = source_;
  auto refused = (*engine)->Submit(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("deploy has no cluster"));
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("missing-kubeconfig"));
  EXPECT_EQ(Executed(), 0u);

  p.mutable_options()->set_unsupported(v1::SKIP);
  req.pipeline = p;
  auto handle = (*engine)->Submit(req);
  ASSERT_TRUE(handle.ok()) << handle.status();
  v1::Run run = (*handle)->Wait();
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(Task(run, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(run, "deploy").state(), v1::TASK_SKIPPED);
  EXPECT_THAT(Task(run, "deploy").reason(),
              ::testing::HasSubstr("deploy has no cluster"));
}

TEST_F(EngineTest, IdempotencyKeyReturnsTheSameRun) {
  RunRequest req;
  req.pipeline = BuildTestPipeline();
  req.source_dir = source_;
  req.idempotency_key = "submit-1";
  auto a = engine_->Submit(req);
  ASSERT_TRUE(a.ok());
  (*a)->Wait();
  auto b = engine_->Submit(req);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*a)->id(), (*b)->id());
  EXPECT_EQ(Executed(), 2u);
}

TEST_F(EngineTest, ResumeContinuesAnUnfinishedRun) {
  // Record a run whose first task finished before the "crash".
  v1::Run first = Run(BuildTestPipeline());
  std::string app = Task(first, "build").outputs().at("app");
  auto& runs = engine_->store().runs();
  auto created =
      runs.CreateRun(BuildTestPipeline(), v1::Trigger(), source_, "");
  ASSERT_TRUE(created.ok());
  std::vector<v1::RunEvent> events(3);
  events[0].mutable_run_state()->set_state(v1::RUN_RUNNING);
  events[1].mutable_task_state()->set_task("build");
  events[1].mutable_task_state()->set_state(v1::TASK_RUNNING);
  events[2].mutable_task_state()->set_task("build");
  events[2].mutable_task_state()->set_state(v1::TASK_SUCCEEDED);
  store::TaskOutputs outputs;
  outputs.outputs["app"] = app;
  ASSERT_TRUE(runs.SetTaskOutputs(created->run_id, "build", outputs).ok());
  ASSERT_TRUE(runs.AppendEvents(created->run_id, events).ok());
  // Make the cache useless so that only "not executing again" can explain
  // build not running.
  executor_->On("make", [](const v1::ExecRequest& req) {
    FakeScript s;
    if (req.argv(1) == "build") s.Exit(99);
    return s;
  });
  auto resumed = engine_->Resume(created->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  v1::Run result = (*resumed)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_EQ(Task(result, "build").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(result, "test").state(), v1::TASK_CACHED);
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

TEST_F(EngineTest, ShutdownCheckpointsAndTheNextEngineResumes) {
  executor_->On("sleep", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Stdout("sleeping").Delay(absl::Seconds(30));
    return s;
  });
  v1::Pipeline p = BuildTestPipeline();
  v1::Task* slow = p.add_tasks();
  slow->set_name("slow");
  slow->add_needs("build");
  slow->mutable_run()->add_command("sleep");
  RunRequest req;
  req.pipeline = p;
  req.source_dir = source_;
  auto run = engine_->Submit(req);
  ASSERT_TRUE(run.ok());
  absl::Notification sleeping;
  (*run)->Subscribe(0, [&](const v1::RunEvent& e) {
    if (e.has_log() && e.log().text() == "sleeping" &&
        !sleeping.HasBeenNotified()) {
      sleeping.Notify();
    }
  });
  ASSERT_TRUE(sleeping.WaitForNotificationWithTimeout(absl::Seconds(20)));
  std::string id = (*run)->id();
  engine_->Shutdown(absl::Milliseconds(100));
  EXPECT_FALSE(engine_->Submit(req).ok()) << "no submits after Shutdown";
  auto recorded = engine_->GetRun(id);
  ASSERT_TRUE(recorded.ok());
  EXPECT_EQ(recorded->state(), v1::RUN_RUNNING) << "the run is not over";
  engine_.reset();

  // The next engine on the store resumes it; now `slow` is quick.
  executor_->On("sleep", [](const v1::ExecRequest&) { return FakeScript(); });
  EngineOptions options;
  options.store_dir = store_;
  options.executor = executor_;
  auto next = Engine::Create(options);
  ASSERT_TRUE(next.ok());
  auto resumed = (*next)->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(*resumed, std::vector<std::string>{id});
  auto handle = (*next)->Find(id);
  ASSERT_TRUE(handle.ok());
  v1::Run result = (*handle)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_EQ(Task(result, "slow").state(), v1::TASK_SUCCEEDED);
  // The interrupted attempt was 1: the re-executed one is 2, with a log of
  // its own.
  EXPECT_EQ(Task(result, "slow").attempts(), 2u);
  ASSERT_GE(executor_->requests().size(), 1u);
  EXPECT_EQ(executor_->requests().back().attempt(), 2u);
  auto logs = (*next)->store().runs().AttemptLogs(id, "slow");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 2u);
  EXPECT_EQ((*logs)[0].attempt, 1u);
  EXPECT_EQ((*logs)[1].attempt, 2u);
  EXPECT_NE((*logs)[0].path, (*logs)[1].path);
  EXPECT_TRUE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[0].path), "sleeping"));
  EXPECT_FALSE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[1].path), "sleeping"))
      << "the new attempt does not append to the old attempt's log";
}

// Records a run of one task "block" in the store, as if an engine had
// created it, and returns its id.
std::string RecordBlockRun(store::RunStore& runs) {
  v1::Pipeline p;
  p.set_name("owned");
  v1::Task* t = p.add_tasks();
  t->set_name("block");
  t->mutable_run()->add_command("block");
  auto created = runs.CreateRun(p, v1::Trigger(), "", "");
  EXPECT_TRUE(created.ok()) << created.status();
  return created.ok() ? created->run_id : "";
}

TEST_F(EngineTest, TwoEnginesRacingToResumeARunOneRefuses) {
  absl::Notification started;
  executor_->On("block", [&](const v1::ExecRequest&) {
    if (!started.HasBeenNotified()) started.Notify();
    FakeScript s;
    s.Delay(absl::Hours(1));  // until cancelled
    return s;
  });
  std::string id = RecordBlockRun(engine_->store().runs());
  EngineOptions options;
  options.store_dir = store_;
  options.executor = executor_;
  auto other = Engine::Create(options);
  ASSERT_TRUE(other.ok()) << other.status();

  absl::StatusOr<std::shared_ptr<RunHandle>> a, b;
  std::thread ta([&] { a = engine_->Resume(id); });
  std::thread tb([&] { b = (*other)->Resume(id); });
  ta.join();
  tb.join();
  ASSERT_NE(a.ok(), b.ok()) << "exactly one engine owns the run: " << a.status()
                            << " / " << b.status();
  const absl::Status& refused = a.ok() ? b.status() : a.status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "another kiln process"))
      << refused;
  Engine* owner = a.ok() ? engine_.get() : other->get();
  Engine* loser = a.ok() ? other->get() : engine_.get();
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // Starting up (kiln serve) does not take it either.
  auto resumed = loser->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(resumed->empty());
  auto seen = loser->GetRun(id);
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->owner_gone()) << "its owner is alive";
  EXPECT_EQ(executor_->requests().size(), 1u) << "executed once";

  ASSERT_TRUE(owner->Cancel(id, "test over").ok());
  auto handle = owner->Find(id);
  ASSERT_TRUE(handle.ok());
  EXPECT_EQ((*handle)->Wait().state(), v1::RUN_CANCELLED);
  // Finished: the lease is gone and so is any claim to take the run over.
  auto done = loser->GetRun(id);
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(done->owner_gone());
}

TEST_F(EngineTest, AKilledOwnersRunShowsInterruptedAndIsTakenOver) {
  // A process of its own owns a run, blocked in its task.
  std::string helper = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                    "/kiln/engine/engine_owner_helper");
  std::vector<char*> argv = {helper.data(), store_.data(), nullptr};
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{child};
  // The helper prints the run id once its task is running.
  std::string id;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') id.push_back(c);
  close(out[0]);
  ASSERT_FALSE(id.empty()) << "the helper failed";

  auto live = engine_->GetRun(id);
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(live->state(), v1::RUN_RUNNING);
  EXPECT_FALSE(live->owner_gone());
  auto refused = engine_->Resume(id);
  ASSERT_FALSE(refused.ok()) << "the live owner keeps its run";
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                absl::StrCat("pid ", child)))
      << refused.status();

  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  reaper.pid = 0;

  // Still "running" in the records, but visibly ownerless.
  auto orphan = engine_->GetRun(id);
  ASSERT_TRUE(orphan.ok());
  EXPECT_EQ(orphan->state(), v1::RUN_RUNNING);
  EXPECT_TRUE(orphan->owner_gone());
  auto page = engine_->store().runs().ListRuns({}, 10, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->runs.size(), 1u);
  EXPECT_TRUE(page->runs[0].owner_gone());

  // A resume takes it over; the killed attempt was 1, this one is 2.
  executor_->On("block", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Stdout("quick");
    return s;
  });
  auto resumed = engine_->ResumeUnfinished();
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(*resumed, std::vector<std::string>{id});
  auto handle = engine_->Find(id);
  ASSERT_TRUE(handle.ok());
  v1::Run result = (*handle)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_FALSE(result.owner_gone());
  EXPECT_EQ(Task(result, "block").attempts(), 2u);
  ASSERT_EQ(executor_->requests().size(), 1u);
  EXPECT_EQ(executor_->requests()[0].attempt(), 2u);
  auto logs = engine_->store().runs().AttemptLogs(id, "block");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].attempt, 2u);
  EXPECT_FALSE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[0].path), "blocking"));
}

// Peak resident set of this process, in KiB.
int64_t PeakRssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

TEST_F(EngineTest, AnOutputFloodStaysBoundedInMemoryLogsAndRunStore) {
  const int64_t rss_before = PeakRssKib();
  // Prints until its timeout: far more lines than any cap.
  executor_->On("flood", [](const v1::ExecRequest&) {
    FakeScript s;
    s.Flood(std::string(60, 'y'));
    return s;
  });
  v1::Pipeline p;
  p.set_name("flood");
  v1::Task* t = p.add_tasks();
  t->set_name("yes");
  t->mutable_run()->add_command("flood");
  t->mutable_hints()->mutable_timeout()->set_seconds(3);
  std::vector<v1::RunEvent> events;
  v1::Run run = Run(p, {}, &events);
  // Stopped by its timeout (or by the executor's output limit).
  EXPECT_NE(Task(run, "yes").state(), v1::TASK_SUCCEEDED) << run.reason();

  int64_t log_events = 0;
  int64_t not_streamed = 0;
  bool limit_marker = false;
  for (const auto& e : events) {
    if (!e.has_log()) continue;
    ++log_events;
    const std::string& text = e.log().text();
    if (absl::StrContains(text, "streaming limit of this attempt reached")) {
      limit_marker = true;
    }
    if (absl::StartsWith(text, "[kiln: ") &&
        absl::StrContains(text, "log lines not streamed")) {
      not_streamed = std::strtoll(text.c_str() + 7, nullptr, 10);
    }
  }
  const EngineOptions defaults;
  EXPECT_LE(log_events, defaults.max_log_events_per_attempt + 2);
  EXPECT_TRUE(limit_marker);
  EXPECT_GT(not_streamed, 0) << "the flood outran the cap";

  // The stored log is capped (the task sets no max_log_bytes: the engine's
  // default applies) and says so.
  auto logs = engine_->store().runs().AttemptLogs(run.id(), "yes");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  std::string log = ReadFile(store_ + "/" + (*logs)[0].path);
  EXPECT_LE(static_cast<int64_t>(log.size()), defaults.max_log_file_bytes);
  if (not_streamed + defaults.max_log_events_per_attempt >
      defaults.max_log_file_bytes / 60) {
    EXPECT_TRUE(absl::StrContains(log, "log truncated"));
  }

  // runs.db (with its WAL) holds at most the streamed budget.
  int64_t db_bytes = 0;
  for (const char* f : {"/runs.db", "/runs.db-wal"}) {
    std::error_code ec;
    auto size = fs::file_size(store_ + f, ec);
    if (!ec) db_bytes += static_cast<int64_t>(size);
  }
  EXPECT_LT(db_bytes, 16 << 20);
  const int64_t rss_after = PeakRssKib();
  ASSERT_GT(rss_before, 0);
  EXPECT_LT(rss_after - rss_before, 256 * 1024) << "KiB of peak RSS growth";
}

TEST_F(EngineTest, LinesDroppedByAFullEventQueueAreCountedInAMarker) {
  // A queue bound of zero drops every line from the stream, deterministically.
  EngineOptions options;
  options.store_dir = store_;
  options.executor = executor_;
  options.max_pending_log_events = 0;
  auto engine = Engine::Create(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  executor_->On("talk", [](const v1::ExecRequest&) {
    FakeScript s;
    for (int i = 0; i < 5; ++i) s.Stdout(absl::StrCat("line ", i));
    return s;
  });
  RunRequest req;
  req.pipeline.set_name("talk");
  v1::Task* t = req.pipeline.add_tasks();
  t->set_name("talk");
  t->mutable_run()->add_command("talk");
  auto run = (*engine)->Submit(req);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ((*run)->Wait().state(), v1::RUN_SUCCEEDED);
  std::vector<std::string> lines;
  (*run)->Subscribe(0, [&](const v1::RunEvent& e) {
    if (e.has_log()) lines.push_back(e.log().text());
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(lines[0], "[kiln: 5 log lines not streamed"))
      << lines[0];
  // The log file has them all.
  auto logs = (*engine)->store().runs().AttemptLogs((*run)->id(), "talk");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_TRUE(
      absl::StrContains(ReadFile(store_ + "/" + (*logs)[0].path), "line 4"));
}

TEST_F(EngineTest, StoreFilesAreOwnerOnly) {
  Run(BuildTestPipeline());
  for (const char* f :
       {"/runs.db", "/runs.db-wal", "/runs.db-shm", "/action_cache.db"}) {
    struct stat st;
    ASSERT_EQ(stat((store_ + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  for (const std::string& d : {store_, store_ + "/logs"}) {
    struct stat st;
    ASSERT_EQ(stat(d.c_str(), &st), 0) << d;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
}

}  // namespace
}  // namespace kiln
