// Shared fixture for the hostile-task tests: a LocalSandboxExecutor, a fresh
// workspace, helpers to run /bin/sh scripts and to look for leftover
// processes by a unique token in their command line (never to kill them).
#ifndef KILN_TESTS_SANDBOX_SANDBOX_FIXTURE_H_
#define KILN_TESTS_SANDBOX_SANDBOX_FIXTURE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "executors/local_sandbox/local_sandbox_executor.h"
#include "executors/testing/recording_sink.h"
#include "gtest/gtest.h"

namespace kiln {
namespace sandbox_test {

struct Outcome {
  v1::ExecResult result;
  std::vector<std::string> out;
  std::vector<std::string> err;
  std::string Joined() const;  // stdout and stderr, for failure messages
};

class SandboxFixture : public ::testing::Test {
 protected:
  // `cgroups`: kOff inside Bazel's sandbox, kRequire for no-sandbox tests.
  void SetUpExecutor(LocalSandboxOptions::Cgroups cgroups,
                     std::vector<std::string> extra_hidden = {},
                     bool with_defaults = true);
  void SetUp() override;
  void TearDown() override;

  v1::ExecRequest ShellRequest(const std::string& script);
  Outcome Run(const v1::ExecRequest& request);
  Outcome RunShell(const std::string& script);
  // The executor still runs a normal task correctly.
  void ExpectHealthy();

  // A token unique to this test run, for process command lines.
  std::string UniqueToken(const std::string& what);
  // Pids of host processes whose command line contains `token`.
  static std::vector<int> ProcessesWithToken(const std::string& token);

  std::string tmp_;        // per-test scratch dir (not in the workspace)
  std::string workspace_;  // realpath
  std::unique_ptr<LocalSandboxExecutor> executor_;
  // Read by SetUpExecutor().
  LocalSandboxOptions::NetworkNamespaces network_namespaces_ =
      LocalSandboxOptions::NetworkNamespaces::kPerTask;
};

}  // namespace sandbox_test
}  // namespace kiln

#endif  // KILN_TESTS_SANDBOX_SANDBOX_FIXTURE_H_
