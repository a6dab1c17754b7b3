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

// Where artifacts of the suite's location-independent requests live: the
// inputs the suite puts and the outputs it reads back by digest.
class ConformanceArtifacts {
 public:
  using Files = MemoryArtifactAccess::Files;
  virtual ~ConformanceArtifacts() = default;
  virtual std::string Put(Files files) = 0;
  virtual absl::StatusOr<Files> Get(const std::string& digest) = 0;
};

// What an executor is, as far as the suite's cases differ. Each case that
// depends on one of these asserts the executor's behaviour for both values
// (never a skip).
struct HarnessTraits {
  // Runs requests in a workspace prepared on this host (request.workspace).
  // Otherwise (a pod) every request of the suite is location-independent:
  // files are put as inputs and read back as outputs, and nothing of a
  // workspace is ever left on this host (keep_workspace keeps nothing here).
  bool host_workspace = true;
  // stdout and stderr reach the sink as separate streams. Otherwise (a
  // container log merges them) every line arrives as STDOUT, each stream's
  // lines in their order.
  bool separate_streams = true;
  // An image that cannot be prepared is INPUTS_FAILED before anything runs
  // ("image 'REF': ..."). Otherwise (a node pulls it, and the pull is
  // retried) it is INFRA_FAILED naming the image, which the engine retries.
  bool images_prepared_locally = true;
};

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
  virtual HarnessTraits Traits() { return {}; }
  // Null: the suite's MemoryArtifactAccess (ConformanceEnv.artifacts).
  virtual ConformanceArtifacts* Artifacts() { return nullptr; }
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
  // Stores files as an artifact / reads one back (through the harness's
  // Artifacts() when it has its own).
  std::string PutFiles(MemoryArtifactAccess::Files files);
  absl::StatusOr<MemoryArtifactAccess::Files> GetFiles(
      const std::string& digest);
  // Starts and waits; fails the test if Start fails.
  v1::ExecResult Run(const v1::ExecRequest& request, RecordingSink* sink);

  MemoryArtifactAccess artifacts_;
  ConformanceEnv env_;
  std::unique_ptr<ExecutorHarness> harness_;
  std::string run_id_;  // unique per case
  std::string workspace_;
};

// Cases only executors running real processes in a workspace on this host
// can pass (signals, descendants, a FIFO in the workspace): instantiate it
// in addition to ExecutorConformanceTest; it requires
// Traits().host_workspace.
class ProcessExecutorConformanceTest : public ExecutorConformanceTest {};

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_CONFORMANCE_H_
