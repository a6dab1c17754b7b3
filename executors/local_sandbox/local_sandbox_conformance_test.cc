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
  LocalSandboxHarness() {
    LocalSandboxOptions options;
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

INSTANTIATE_TEST_SUITE_P(LocalSandbox, ExecutorConformanceTest,
                         ::testing::Values(ExecutorFactory{
                             "local_sandbox",
                             [] {
                               return std::make_unique<LocalSandboxHarness>();
                             }}),
                         ExecutorFactoryName);

}  // namespace
}  // namespace conformance
}  // namespace kiln
