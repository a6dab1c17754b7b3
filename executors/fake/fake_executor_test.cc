#include "executors/fake/fake_executor.h"

#include <fstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "executors/testing/recording_sink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using conformance::RecordingSink;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::ExecRequest Request(const std::string& argv0) {
  v1::ExecRequest request;
  request.add_argv(argv0);
  request.add_argv("arg");
  request.set_task("t");
  return request;
}

v1::ExecResult RunToEnd(FakeExecutor& fake, const v1::ExecRequest& request,
                        RecordingSink* sink) {
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      fake.Start(request, sink);
  EXPECT_TRUE(execution.ok()) << execution.status();
  return (*execution)->Wait();
}

TEST(FakeExecutorTest, RunsTheBehaviourRegisteredForArgv0) {
  FakeExecutor fake;
  fake.On("make", [](const v1::ExecRequest& request) {
    return FakeScript().Stdout("building " + request.argv(1)).Exit(2);
  });
  RecordingSink sink;
  v1::ExecResult result = RunToEnd(fake, Request("make"), &sink);
  EXPECT_EQ(result.status(), v1::EXITED);
  EXPECT_EQ(result.exit_code(), 2);
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAre("building arg"));
}

TEST(FakeExecutorTest, UnknownCommandIsSetupFailed) {
  FakeExecutor fake;
  RecordingSink sink;
  v1::ExecResult result = RunToEnd(fake, Request("nope"), &sink);
  EXPECT_EQ(result.status(), v1::SETUP_FAILED);
  EXPECT_THAT(result.message(), HasSubstr("nope"));
}

TEST(FakeExecutorTest, DefaultBehaviourAndScriptedStatus) {
  FakeExecutor fake;
  fake.SetDefault([](const v1::ExecRequest&) {
    return FakeScript().Stderr("boom").End(v1::OUT_OF_MEMORY, "oom");
  });
  RecordingSink sink;
  v1::ExecResult result = RunToEnd(fake, Request("anything"), &sink);
  EXPECT_EQ(result.status(), v1::OUT_OF_MEMORY);
  EXPECT_EQ(result.message(), "oom");
  EXPECT_THAT(sink.Lines(v1::LogLine::STDERR), ElementsAre("boom"));
}

TEST(FakeExecutorTest, RecordsEveryRequestInOrder) {
  FakeExecutor fake;
  fake.SetDefault([](const v1::ExecRequest&) { return FakeScript(); });
  RecordingSink sink;
  RunToEnd(fake, Request("a"), &sink);
  RunToEnd(fake, Request("b"), &sink);
  std::vector<v1::ExecRequest> requests = fake.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].argv(0), "a");
  EXPECT_EQ(requests[1].argv(0), "b");
}

TEST(FakeExecutorTest, FailStartsRejectsWithoutRecording) {
  FakeExecutor fake;
  fake.FailStarts(absl::UnavailableError("no capacity"));
  RecordingSink sink;
  EXPECT_EQ(fake.Start(Request("a"), &sink).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(fake.requests().empty());
  fake.FailStarts(absl::OkStatus());
  EXPECT_TRUE(fake.Start(Request("a"), &sink).ok());
}

TEST(FakeExecutorTest, SideEffectRunsAtItsPlaceAndIsSkippedWhenStopped) {
  FakeExecutor fake;
  int effects = 0;
  fake.SetDefault([&effects](const v1::ExecRequest&) {
    return FakeScript()
        .Stdout("before")
        .Delay(absl::Seconds(30))
        .Do([&effects](const v1::ExecRequest&) { ++effects; });
  });
  RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      fake.Start(Request("x"), &sink);
  ASSERT_TRUE(execution.ok());
  std::thread canceller([&] {
    ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(10)));
    (*execution)->Cancel();
  });
  v1::ExecResult result = (*execution)->Wait();
  canceller.join();
  EXPECT_EQ(result.status(), v1::CANCELLED);
  EXPECT_EQ(effects, 0);
}

TEST(FakeExecutorTest, CountsRunningExecutions) {
  FakeExecutor fake;
  fake.SetDefault([](const v1::ExecRequest&) { return FakeScript(); });
  RecordingSink sink;
  auto a = fake.Start(Request("a"), &sink);
  auto b = fake.Start(Request("b"), &sink);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(fake.running(), 2);
  (*a)->Wait();
  EXPECT_EQ(fake.running(), 1);
  b->reset();  // dropped without Wait still counts as finished
  EXPECT_EQ(fake.running(), 0);
  EXPECT_EQ(fake.max_running(), 2);
}

TEST(FakeExecutorTest, TimeoutIsMeasuredFromStart) {
  FakeExecutor fake;
  fake.SetDefault([](const v1::ExecRequest&) {
    return FakeScript().Delay(absl::Seconds(30)).Exit(0);
  });
  v1::ExecRequest request = Request("slow");
  request.mutable_limits()->mutable_timeout()->set_nanos(50000000);
  RecordingSink sink;
  absl::Time start = absl::Now();
  v1::ExecResult result = RunToEnd(fake, request, &sink);
  EXPECT_EQ(result.status(), v1::TIMED_OUT);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace kiln
