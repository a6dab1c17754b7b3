#include "executors/testing/conformance.h"

#include <limits.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"

namespace kiln {
namespace conformance {

using ::testing::ElementsAreArray;
using ::testing::UnorderedElementsAre;

namespace {
ProgramStep Step(ProgramStep::Op op) {
  ProgramStep step;
  step.op = op;
  return step;
}
}  // namespace

ProgramStep Print(std::string line) {
  ProgramStep step = Step(ProgramStep::Op::kPrint);
  step.text = std::move(line);
  return step;
}
ProgramStep PrintErr(std::string line) {
  ProgramStep step = Step(ProgramStep::Op::kPrintErr);
  step.text = std::move(line);
  return step;
}
ProgramStep Sleep(absl::Duration duration) {
  ProgramStep step = Step(ProgramStep::Op::kSleep);
  step.duration = duration;
  return step;
}
ProgramStep WriteFile(std::string path, std::string text) {
  ProgramStep step = Step(ProgramStep::Op::kWriteFile);
  step.path = std::move(path);
  step.text = std::move(text);
  return step;
}
ProgramStep PrintEnv() { return Step(ProgramStep::Op::kPrintEnv); }
ProgramStep Flood() { return Step(ProgramStep::Op::kFlood); }
ProgramStep IgnoreTerm() { return Step(ProgramStep::Op::kIgnoreTerm); }
ProgramStep Exit(int code) {
  ProgramStep step = Step(ProgramStep::Op::kExit);
  step.code = code;
  return step;
}

std::string ExecutorFactoryName(
    const ::testing::TestParamInfo<ExecutorFactory>& info) {
  return info.param.name;
}

void ExecutorConformanceTest::SetUp() {
  harness_ = GetParam().make();
  ASSERT_NE(harness_, nullptr);
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/conformance-XXXXXX");
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  char resolved[PATH_MAX];
  ASSERT_NE(realpath(pattern.c_str(), resolved), nullptr);
  workspace_ = resolved;
}

void ExecutorConformanceTest::TearDown() {
  std::error_code ignored;
  if (!workspace_.empty()) std::filesystem::remove_all(workspace_, ignored);
}

v1::ExecRequest ExecutorConformanceTest::Request(const Program& program) {
  v1::ExecRequest request;
  request.set_run_id("run-1");
  request.set_task("task");
  request.set_attempt(1);
  for (const std::string& arg : harness_->Argv(program)) {
    request.add_argv(arg);
  }
  request.set_workspace(workspace_);
  request.mutable_limits()->mutable_timeout()->set_seconds(60);
  request.mutable_limits()->mutable_kill_grace()->set_nanos(500000000);
  return request;
}

v1::ExecResult ExecutorConformanceTest::Run(const v1::ExecRequest& request,
                                            RecordingSink* sink) {
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      harness_->executor()->Start(request, sink);
  EXPECT_TRUE(execution.ok()) << execution.status();
  if (!execution.ok()) return v1::ExecResult();
  return (*execution)->Wait();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST_P(ExecutorConformanceTest, ExitZeroIsASuccessfulResult) {
  RecordingSink sink;
  v1::ExecResult result = Run(Request({Exit(0)}), &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0);
}

TEST_P(ExecutorConformanceTest, NonZeroExitIsAResultNotAnError) {
  RecordingSink sink;
  v1::ExecResult result = Run(Request({Exit(3)}), &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 3);
}

TEST_P(ExecutorConformanceTest, OutputArrivesInOrderTaggedByStream) {
  Program program;
  std::vector<std::string> out, err;
  for (int i = 0; i < 200; ++i) {
    out.push_back(absl::StrCat("out line ", i));
    program.push_back(Print(out.back()));
    if (i % 4 == 0) {
      err.push_back(absl::StrCat("err line ", i));
      program.push_back(PrintErr(err.back()));
    }
  }
  RecordingSink sink;
  v1::ExecResult result = Run(Request(program), &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAreArray(out));
  EXPECT_THAT(sink.Lines(v1::LogLine::STDERR), ElementsAreArray(err));
  EXPECT_TRUE(sink.Consistent());
}

TEST_P(ExecutorConformanceTest, EnvironmentIsExactlyTheRequests) {
  v1::ExecRequest request = Request({PrintEnv()});
  (*request.mutable_env())["KILN_A"] = "1";
  (*request.mutable_env())["KILN_B"] = "two words; $(not expanded)";
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_THAT(
      sink.Lines(v1::LogLine::STDOUT),
      UnorderedElementsAre("KILN_A=1", "KILN_B=two words; $(not expanded)"));
}

TEST_P(ExecutorConformanceTest, WorkdirIsHonoredAndFilesAreVisibleAfterWait) {
  std::filesystem::create_directories(workspace_ + "/sub/dir");
  v1::ExecRequest request =
      Request({WriteFile("out.txt", "written in workdir"), Exit(0)});
  request.set_workdir("sub/dir");
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(ReadFile(workspace_ + "/sub/dir/out.txt"), "written in workdir");
}

TEST_P(ExecutorConformanceTest, TimeoutEndsWithTimedOut) {
  v1::ExecRequest request =
      Request({Print("started"), Sleep(absl::Seconds(30))});
  request.mutable_limits()->mutable_timeout()->set_seconds(0);
  request.mutable_limits()->mutable_timeout()->set_nanos(300000000);
  RecordingSink sink;
  absl::Time start = absl::Now();
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::TIMED_OUT) << result.message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAreArray({"started"}));
}

TEST_P(ExecutorConformanceTest, CancelEndsWithCancelledAndIsIdempotent) {
  RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      harness_->executor()->Start(
          Request({Print("started"), Sleep(absl::Seconds(30))}), &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  // Cancel from several threads while another one waits.
  v1::ExecResult result;
  std::thread waiter([&] { result = (*execution)->Wait(); });
  std::vector<std::thread> cancellers;
  for (int i = 0; i < 4; ++i) {
    cancellers.emplace_back([&] { (*execution)->Cancel(); });
  }
  for (std::thread& t : cancellers) t.join();
  waiter.join();
  (*execution)->Cancel();  // after Wait: still harmless
  EXPECT_EQ(result.status(), v1::CANCELLED) << result.message();
}

TEST_P(ExecutorConformanceTest, CancelEscalatesToKillWhenTermIsIgnored) {
  // The program (and the sleep it runs, which inherits the ignored
  // disposition) survives SIGTERM: after kill_grace (0.5 s) the executor
  // must SIGKILL it rather than wait out the 30 s sleep.
  RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      harness_->executor()->Start(
          Request({IgnoreTerm(), Print("started"), Sleep(absl::Seconds(30))}),
          &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  absl::Time start = absl::Now();
  (*execution)->Cancel();
  v1::ExecResult result = (*execution)->Wait();
  EXPECT_EQ(result.status(), v1::CANCELLED) << result.message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(15))
      << "SIGTERM was ignored and no SIGKILL followed";
}

TEST_P(ExecutorConformanceTest, CancelAfterCompletionKeepsTheResult) {
  RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      harness_->executor()->Start(Request({Print("done"), Exit(4)}), &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  absl::SleepFor(absl::Milliseconds(200));
  v1::ExecResult result = (*execution)->Wait();
  (*execution)->Cancel();
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 4);
}

TEST_P(ExecutorConformanceTest, EndlessOutputEndsWithLogLimit) {
  v1::ExecRequest request = Request({Flood()});
  request.mutable_limits()->set_max_log_bytes(64 * 1024);
  RecordingSink sink;
  absl::Time start = absl::Now();
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::LOG_LIMIT) << result.message();
  EXPECT_GT(result.log_bytes(), 64u * 1024);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  size_t delivered = 0;
  for (const std::string& line : sink.Lines(v1::LogLine::STDOUT)) {
    delivered += line.size() + 1;
  }
  EXPECT_LE(delivered, 64u * 1024 + 1);
}

TEST_P(ExecutorConformanceTest, ManyExecutionsRunConcurrently) {
  constexpr int kCount = 12;
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  std::vector<std::unique_ptr<Execution>> executions(kCount);
  for (int i = 0; i < kCount; ++i) {
    sinks.push_back(std::make_unique<RecordingSink>());
  }
  std::vector<v1::ExecRequest> requests;
  for (int i = 0; i < kCount; ++i) {
    requests.push_back(Request({Print(absl::StrCat("task ", i)),
                                Sleep(absl::Milliseconds(100)), Exit(i % 5)}));
  }
  std::vector<std::thread> starters;
  for (int t = 0; t < 3; ++t) {
    starters.emplace_back([&, t] {
      for (int i = t; i < kCount; i += 3) {
        absl::StatusOr<std::unique_ptr<Execution>> execution =
            harness_->executor()->Start(requests[i], sinks[i].get());
        EXPECT_TRUE(execution.ok()) << execution.status();
        if (execution.ok()) executions[i] = std::move(*execution);
      }
    });
  }
  for (std::thread& t : starters) t.join();
  for (int i = 0; i < kCount; ++i) {
    ASSERT_NE(executions[i], nullptr);
    v1::ExecResult result = executions[i]->Wait();
    EXPECT_EQ(result.status(), v1::EXITED) << result.message();
    EXPECT_EQ(result.exit_code(), i % 5);
    EXPECT_THAT(sinks[i]->Lines(v1::LogLine::STDOUT),
                ElementsAreArray({absl::StrCat("task ", i)}));
  }
}

}  // namespace conformance
}  // namespace kiln
