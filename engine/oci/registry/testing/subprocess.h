// Test helpers: running a command with a deadline and capturing its output,
// and a private temporary directory removed at the end.
#ifndef KILN_ENGINE_OCI_REGISTRY_TESTING_SUBPROCESS_H_
#define KILN_ENGINE_OCI_REGISTRY_TESTING_SUBPROCESS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kiln::oci::registry::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string output;  // stdout and stderr interleaved
};

// Runs argv[0] (searched in PATH) with `env` as its whole environment
// (PATH is added when missing), killing it (and failing DeadlineExceeded)
// after `timeout`. Output is capped at 4 MiB.
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env = {},
    absl::Duration timeout = absl::Seconds(60));

// A fresh directory under $TEST_TMPDIR (else $TMPDIR, else /tmp), removed
// with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kiln::oci::registry::testing

#endif  // KILN_ENGINE_OCI_REGISTRY_TESTING_SUBPROCESS_H_
