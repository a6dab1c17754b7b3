// A child process for tests that drive real clients (kubectl, python3):
// started with argv and extra environment, its stdout+stderr collected by a
// reader thread, waited for with a deadline, killed (its process group, by
// pid) when the test is done with it or the deadline passes.
#ifndef KILN_KUBE_TESTING_PROCESS_H_
#define KILN_KUBE_TESTING_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace kiln {
namespace kube {
namespace testing {

class TestProcess {
 public:
  // Starts argv[0] (looked up in PATH) with the environment plus `env`.
  static absl::StatusOr<std::unique_ptr<TestProcess>> Start(
      const std::vector<std::string>& argv,
      const std::vector<std::pair<std::string, std::string>>& env = {});
  ~TestProcess();  // kills the process group if still running

  // Everything the process wrote so far (stdout and stderr interleaved).
  std::string output() const;
  // Waits until output() contains `text` or `timeout` passes.
  bool WaitForOutput(const std::string& text, absl::Duration timeout) const;
  // Waits for exit; the exit code (128+signal if signalled) or
  // DeadlineExceeded (the process is then killed).
  absl::StatusOr<int> Wait(absl::Duration timeout);
  void Kill();

 private:
  TestProcess() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  mutable Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool reaped_ = false;
  int status_ = 0;
};

// Runs a command to completion: {exit code, output}.
absl::StatusOr<std::pair<int, std::string>> RunProcess(
    const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env,
    absl::Duration timeout);

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_PROCESS_H_
