// The executor conformance suite against LocalSandboxExecutor (cgroups off:
// this runs inside Bazel's own sandbox, where /sys/fs/cgroup is read-only).
#include <memory>

#include "executors/local_sandbox/local_sandbox_executor.h"
#include "executors/testing/conformance.h"
#include "executors/testing/shell_program.h"

namespace kiln {
namespace conformance {
namespace {

class LocalSandboxHarness : public ExecutorHarness {
 public:
  explicit LocalSandboxHarness(const ConformanceEnv& env) {
    LocalSandboxOptions options;
    options.work_root = env.work_root;
    options.artifacts = env.artifacts;
    options.hidden_paths = DefaultHiddenPaths("");
    options.cgroups = LocalSandboxOptions::Cgroups::kOff;
    absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
        LocalSandboxExecutor::Create(options);
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (executor.ok()) executor_ = std::move(*executor);
  }
  Executor* executor() override { return executor_.get(); }
  std::vector<std::string> Argv(const Program& program) override {
    return ShellArgv(program);
  }

 private:
  std::unique_ptr<LocalSandboxExecutor> executor_;
};

ExecutorFactory Factory() {
  return ExecutorFactory{"local_sandbox", [](const ConformanceEnv& env) {
                           return std::make_unique<LocalSandboxHarness>(env);
                         }};
}

INSTANTIATE_TEST_SUITE_P(LocalSandbox, ExecutorConformanceTest,
                         ::testing::Values(Factory()), ExecutorFactoryName);
INSTANTIATE_TEST_SUITE_P(LocalSandbox, ProcessExecutorConformanceTest,
                         ::testing::Values(Factory()), ExecutorFactoryName);

}  // namespace
}  // namespace conformance
}  // namespace kiln
