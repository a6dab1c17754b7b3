// The executor conformance suite: one parameterized GoogleTest suite that
// every Executor implementation instantiates. Test programs are abstract
// (Print, Sleep, WriteFile, ...); each implementation's harness turns them
// into something it can run (a /bin/sh script, a scripted fake, a pod).
//
// Usage, in a cc_test that links //executors/testing:conformance:
//   INSTANTIATE_TEST_SUITE_P(Mine, ExecutorConformanceTest,
//       ::testing::Values(ExecutorFactory{"mine", [] { return ...; }}),
//       ExecutorFactoryName);
#ifndef KILN_EXECUTORS_TESTING_CONFORMANCE_H_
#define KILN_EXECUTORS_TESTING_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executors/executor.h"
#include "executors/testing/memory_artifact_access.h"
#include "executors/testing/recording_sink.h"
#include "gtest/gtest.h"

namespace kiln {
namespace conformance {

// One step of an abstract test program; a program runs its steps in order
// and exits 0 unless it ends with Exit(code).
struct ProgramStep {
  enum class Op {
    kPrint,       // `text` + '\n' on stdout
    kPrintErr,    // `text` + '\n' on stderr
    kSleep,       // `duration`
    kWriteFile,   // write `text` to `path` (relative to the working dir)
    kPrintEnv,    // every environment variable as NAME=VALUE, one per line;
                  // only as the sole step of a program
    kFlood,       // print lines forever
    kIgnoreTerm,  // ignore SIGTERM from here on
    kExit,        // exit with `code`
    kPrintFile,   // print the content of `path` (one line, no newline in it)
    // Only for executors running real processes: start a background
    // process that ignores SIGTERM, opens the FIFO `path` for writing,
    // writes one byte to it and then sleeps (holding it open) forever.
    kBackgroundHolder,
  };
  Op op = Op::kExit;
  std::string text;
  std::string path;
  absl::Duration duration = absl::ZeroDuration();
  int code = 0;
};
using Program = std::vector<ProgramStep>;

ProgramStep Print(std::string line);
ProgramStep PrintErr(std::string line);
ProgramStep Sleep(absl::Duration duration);
ProgramStep WriteFile(std::string path, std::string text);
ProgramStep PrintEnv();
ProgramStep Flood();
ProgramStep IgnoreTerm();
ProgramStep Exit(int code);
ProgramStep PrintFile(std::string path);
ProgramStep BackgroundHolder(std::string fifo);

// What an implementation provides to the suite.
class ExecutorHarness {
 public:
  virtual ~ExecutorHarness() = default;
  virtual Executor* executor() = 0;
  // argv that makes the executor run `program`.
  virtual std::vector<std::string> Argv(const Program& program) = 0;
  // The image every request of the suite names ("" = the host's root
  // filesystem). An executor with images runs the suite once per mode.
  virtual std::string Image() { return ""; }
};

// What the suite gives a harness: location-independent requests (no
// workspace) make their workspaces under work_root (the suite checks it is
// empty afterwards) and move artifacts through `artifacts`.
struct ConformanceEnv {
  std::string work_root;
  MemoryArtifactAccess* artifacts = nullptr;
};

struct ExecutorFactory {
  std::string name;
  std::function<std::unique_ptr<ExecutorHarness>(const ConformanceEnv&)> make;
};
std::string ExecutorFactoryName(
    const ::testing::TestParamInfo<ExecutorFactory>& info);

class ExecutorConformanceTest
    : public ::testing::TestWithParam<ExecutorFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // A request for `program` in a fresh workspace.
  v1::ExecRequest Request(const Program& program);
  // A location-independent request (no workspace) for `program`.
  v1::ExecRequest LocationFreeRequest(const Program& program);
  // Entries of the work root (workspaces left behind).
  std::vector<std::string> WorkRootEntries() const;
  // Starts and waits; fails the test if Start fails.
  v1::ExecResult Run(const v1::ExecRequest& request, RecordingSink* sink);

  MemoryArtifactAccess artifacts_;
  ConformanceEnv env_;
  std::unique_ptr<ExecutorHarness> harness_;
  std::string workspace_;
};

// Cases only executors running real processes can pass (signals,
// descendants); instantiate it in addition to ExecutorConformanceTest.
class ProcessExecutorConformanceTest : public ExecutorConformanceTest {};

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_CONFORMANCE_H_
