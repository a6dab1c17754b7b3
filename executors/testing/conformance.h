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

// What an implementation provides to the suite.
class ExecutorHarness {
 public:
  virtual ~ExecutorHarness() = default;
  virtual Executor* executor() = 0;
  // argv that makes the executor run `program`.
  virtual std::vector<std::string> Argv(const Program& program) = 0;
};

struct ExecutorFactory {
  std::string name;
  std::function<std::unique_ptr<ExecutorHarness>()> make;
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
  // Starts and waits; fails the test if Start fails.
  v1::ExecResult Run(const v1::ExecRequest& request, RecordingSink* sink);

  std::unique_ptr<ExecutorHarness> harness_;
  std::string workspace_;
};

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_CONFORMANCE_H_
