#include "executors/testing/conformance.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
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

ProgramStep PrintFile(std::string path) {
  ProgramStep step = Step(ProgramStep::Op::kPrintFile);
  step.path = std::move(path);
  return step;
}
ProgramStep BackgroundHolder(std::string fifo) {
  ProgramStep step = Step(ProgramStep::Op::kBackgroundHolder);
  step.path = std::move(fifo);
  return step;
}

std::string ExecutorFactoryName(
    const ::testing::TestParamInfo<ExecutorFactory>& info) {
  return info.param.name;
}

namespace {
std::string MakeTempDir(const std::string& prefix) {
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/", prefix, "-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return "";
  char resolved[PATH_MAX];
  if (realpath(pattern.c_str(), resolved) == nullptr) return "";
  return resolved;
}
}  // namespace

void ExecutorConformanceTest::SetUp() {
  // Each case is its own run: an executor that names what it creates after
  // the run (pods) must not meet the previous case's object, which may still
  // be terminating after a cancel.
  static std::atomic<int> cases{0};
  run_id_ = absl::StrCat("run-", ++cases);
  workspace_ = MakeTempDir("conformance");
  ASSERT_FALSE(workspace_.empty());
  env_.work_root = MakeTempDir("conformance-work");
  ASSERT_FALSE(env_.work_root.empty());
  env_.artifacts = &artifacts_;
  harness_ = GetParam().make(env_);
  ASSERT_NE(harness_, nullptr);
}

void ExecutorConformanceTest::TearDown() {
  harness_.reset();
  std::error_code ignored;
  if (!workspace_.empty()) std::filesystem::remove_all(workspace_, ignored);
  if (!env_.work_root.empty()) {
    std::filesystem::remove_all(env_.work_root, ignored);
  }
}

v1::ExecRequest ExecutorConformanceTest::LocationFreeRequest(
    const Program& program) {
  v1::ExecRequest request = Request(program);
  request.clear_workspace();
  return request;
}

std::vector<std::string> ExecutorConformanceTest::WorkRootEntries() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(env_.work_root, ec)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

std::string ExecutorConformanceTest::PutFiles(
    MemoryArtifactAccess::Files files) {
  ConformanceArtifacts* own = harness_->Artifacts();
  return own != nullptr ? own->Put(std::move(files))
                        : artifacts_.Put(std::move(files));
}

absl::StatusOr<MemoryArtifactAccess::Files> ExecutorConformanceTest::GetFiles(
    const std::string& digest) {
  ConformanceArtifacts* own = harness_->Artifacts();
  return own != nullptr ? own->Get(digest) : artifacts_.Get(digest);
}

v1::ExecRequest ExecutorConformanceTest::Request(const Program& program) {
  v1::ExecRequest request;
  request.set_run_id(run_id_);
  request.set_task("task");
  request.set_attempt(1);
  for (const std::string& arg : harness_->Argv(program)) {
    request.add_argv(arg);
  }
  // An executor without host workspaces runs every request
  // location-independently.
  if (harness_->Traits().host_workspace) request.set_workspace(workspace_);
  request.set_image(harness_->Image());
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
  if (harness_->Traits().separate_streams) {
    EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAreArray(out));
    EXPECT_THAT(sink.Lines(v1::LogLine::STDERR), ElementsAreArray(err));
  } else {
    // One merged log: every line as STDOUT, each stream's lines in order.
    EXPECT_TRUE(sink.Lines(v1::LogLine::STDERR).empty());
    std::vector<std::string> got_out, got_err;
    for (const std::string& line : sink.Lines(v1::LogLine::STDOUT)) {
      (absl::StartsWith(line, "out ") ? got_out : got_err).push_back(line);
    }
    EXPECT_THAT(got_out, ElementsAreArray(out));
    EXPECT_THAT(got_err, ElementsAreArray(err));
  }
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
  if (!harness_->Traits().host_workspace) {
    // The workspace is elsewhere: the directory comes as an input, the
    // file comes back as an output.
    v1::ExecRequest request =
        Request({WriteFile("out.txt", "written in workdir"), Exit(0)});
    request.set_workdir("sub/dir");
    v1::ExecInput* in = request.add_inputs();
    in->set_artifact("dirs");
    in->set_digest(PutFiles({{"sub/dir/.keep", ""}}));
    v1::ExecOutput* out = request.add_outputs();
    out->set_artifact("out");
    out->add_paths("sub/dir/out.txt");
    RecordingSink sink;
    v1::ExecResult result = Run(request, &sink);
    ASSERT_EQ(result.status(), v1::EXITED) << result.message();
    ASSERT_EQ(result.outputs().count("out"), 1u);
    absl::StatusOr<MemoryArtifactAccess::Files> files =
        GetFiles(result.outputs().at("out"));
    ASSERT_TRUE(files.ok()) << files.status();
    EXPECT_EQ(*files, (MemoryArtifactAccess::Files{
                          {"sub/dir/out.txt", "written in workdir"}}));
    return;
  }
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
  absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(15))
      << "SIGTERM was ignored and no SIGKILL followed";
  EXPECT_GE(took, absl::Milliseconds(450))
      << "the kill came before kill_grace (0.5 s) had passed";
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
    // Distinct attempts (an executor may key its work by run/task/attempt,
    // as the pod executor names its pods).
    requests.back().set_task(absl::StrCat("task-", i));
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

TEST_P(ExecutorConformanceTest, InputsAreMaterializedAtTheirPaths) {
  v1::ExecRequest request = LocationFreeRequest(
      {PrintFile("deps/a/a.txt"), PrintFile("lib/b.txt"), Exit(0)});
  v1::ExecInput* a = request.add_inputs();
  a->set_artifact("a");
  a->set_digest(PutFiles({{"a.txt", "from a"}}));
  a->set_path("deps/a");
  v1::ExecInput* b = request.add_inputs();
  b->set_artifact("b");
  b->set_digest(PutFiles({{"lib/b.txt", "from b"}}));
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT),
              ElementsAreArray({"from a", "from b"}));
  EXPECT_TRUE(WorkRootEntries().empty()) << "the workspace is removed";
  EXPECT_TRUE(result.warnings().empty()) << result.warnings(0);
}

TEST_P(ExecutorConformanceTest, OutputsAreCapturedAsDigests) {
  v1::ExecRequest request = LocationFreeRequest(
      {WriteFile("bin.txt", "built"), WriteFile("extra.txt", "not declared"),
       WriteFile("report.xml", "<ok/>"), Exit(0)});
  v1::ExecOutput* out = request.add_outputs();
  out->set_artifact("bin");
  out->add_paths("bin.txt");
  request.set_report("report.xml");
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  ASSERT_EQ(result.status(), v1::EXITED) << result.message();
  ASSERT_EQ(result.outputs().count("bin"), 1u);
  absl::StatusOr<MemoryArtifactAccess::Files> files =
      GetFiles(result.outputs().at("bin"));
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(*files, (MemoryArtifactAccess::Files{{"bin.txt", "built"}}));
  absl::StatusOr<MemoryArtifactAccess::Files> report =
      GetFiles(result.report_digest());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(*report, (MemoryArtifactAccess::Files{{"report.xml", "<ok/>"}}));
  EXPECT_TRUE(WorkRootEntries().empty()) << "the workspace is removed";
}

TEST_P(ExecutorConformanceTest, MissingOutputIsOutputsFailed) {
  v1::ExecRequest request =
      LocationFreeRequest({WriteFile("made.txt", "m"), Exit(0)});
  v1::ExecOutput* out = request.add_outputs();
  out->set_artifact("bin");
  out->add_paths("made.txt");
  out->add_paths("never.txt");
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::OUTPUTS_FAILED);
  EXPECT_EQ(result.message(),
            "output 'bin': path 'never.txt' was not produced");
  EXPECT_TRUE(result.outputs().empty());
  EXPECT_TRUE(WorkRootEntries().empty()) << "the workspace is removed";
}

TEST_P(ExecutorConformanceTest, AFailedCommandCapturesNothing) {
  v1::ExecRequest request =
      LocationFreeRequest({WriteFile("bin.txt", "half"), Exit(2)});
  v1::ExecOutput* out = request.add_outputs();
  out->set_artifact("bin");
  out->add_paths("bin.txt");
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 2);
  EXPECT_TRUE(result.outputs().empty());
  EXPECT_TRUE(WorkRootEntries().empty()) << "the workspace is removed";
}

TEST_P(ExecutorConformanceTest, AnInputThatCannotBeMaterializedIsInputsFailed) {
  v1::ExecRequest request = LocationFreeRequest({Print("ran"), Exit(0)});
  v1::ExecInput* ok = request.add_inputs();
  ok->set_artifact("fine");
  ok->set_digest(PutFiles({{"f.txt", "f"}}));
  v1::ExecInput* clash = request.add_inputs();
  clash->set_artifact("clash");
  clash->set_digest(PutFiles({{"f.txt", "other"}}));
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::INPUTS_FAILED);
  // "input 'clash': ..." (an agent adds the digest: "input 'clash' (sha…):")
  EXPECT_TRUE(absl::StartsWith(result.message(), "input 'clash'"))
      << result.message();
  EXPECT_TRUE(sink.Lines(v1::LogLine::STDOUT).empty()) << "never ran";
  EXPECT_TRUE(WorkRootEntries().empty()) << "the workspace is removed";
}

TEST_P(ExecutorConformanceTest, KeepWorkspaceIsHonoured) {
  v1::ExecRequest request =
      LocationFreeRequest({WriteFile("bin.txt", "kept"), Exit(0)});
  request.set_keep_workspace(true);
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  std::vector<std::string> left = WorkRootEntries();
  if (!harness_->Traits().host_workspace) {
    EXPECT_TRUE(left.empty()) << "no workspace of this executor is here";
    return;
  }
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(ReadFile(absl::StrCat(env_.work_root, "/", left[0], "/bin.txt")),
            "kept");
}

TEST_P(ExecutorConformanceTest, MalformedRequestsAreRefusedAtStart) {
  RecordingSink sink;
  v1::ExecRequest image = LocationFreeRequest({Print("ran"), Exit(0)});
  image.set_image("golang:1.22");
  absl::StatusOr<std::unique_ptr<Execution>> started =
      harness_->executor()->Start(image, &sink);
  if (!harness_->executor()->Capabilities().images) {
    EXPECT_TRUE(absl::IsInvalidArgument(started.status())) << started.status();
    EXPECT_TRUE(harness_->Image().empty());
  } else {
    // An executor with images hands the reference to its image access,
    // which refuses a tag (the engine pins images first): the task fails
    // with that message and nothing runs.
    ASSERT_TRUE(started.ok()) << started.status();
    v1::ExecResult result = (*started)->Wait();
    if (harness_->Traits().images_prepared_locally) {
      EXPECT_EQ(result.status(), v1::INPUTS_FAILED) << result.message();
      EXPECT_TRUE(absl::StartsWith(result.message(), "image 'golang:1.22': "))
          << result.message();
    } else {
      EXPECT_EQ(result.status(), v1::INFRA_FAILED) << result.message();
      EXPECT_TRUE(absl::StrContains(result.message(), "image 'golang:1.22'"))
          << result.message();
    }
    EXPECT_TRUE(sink.Lines(v1::LogLine::STDOUT).empty()) << "never ran";
  }
  // A prepared workspace and inputs at once: the modes do not mix.
  v1::ExecRequest mixed = Request({Exit(0)});
  mixed.set_workspace(workspace_);
  mixed.add_inputs()->set_digest(PutFiles({}));
  started = harness_->executor()->Start(mixed, &sink);
  EXPECT_TRUE(absl::IsInvalidArgument(started.status())) << started.status();
  EXPECT_TRUE(WorkRootEntries().empty());
}

// The fake instantiates only the general suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ProcessExecutorConformanceTest);

TEST_P(ProcessExecutorConformanceTest, CancelKillsDescendantsToo) {
  ASSERT_TRUE(harness_->Traits().host_workspace)
      << "this case needs a FIFO in a workspace on this host";
  // A background grandchild that ignores SIGTERM holds the write end of a
  // FIFO; once every writer is gone, a read of the FIFO sees end-of-file.
  // This cannot race with pid reuse: the test holds the read end, and the
  // kernel closes a process's files when it exits.
  std::string fifo = workspace_ + "/alive";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      harness_->executor()->Start(
          Request({BackgroundHolder("alive"), Sleep(absl::Seconds(30))}),
          &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  struct pollfd p = {reader, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 20000), 1) << "the grandchild never started";
  char byte = 0;
  ASSERT_EQ(read(reader, &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
  (*execution)->Cancel();
  v1::ExecResult result = (*execution)->Wait();
  EXPECT_EQ(result.status(), v1::CANCELLED) << result.message();
  // Every writer is gone: end-of-file, not EAGAIN (a writer still alive).
  ssize_t n = read(reader, &byte, 1);
  int error = errno;
  EXPECT_EQ(n, 0) << (n < 0 ? std::strerror(error) : "data")
                  << ": the grandchild survived Cancel + Wait";
  close(reader);
}

}  // namespace conformance
}  // namespace kiln
