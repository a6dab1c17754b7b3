// The executor conformance suite against LocalSandboxExecutor (cgroups off:
// this runs inside Bazel's own sandbox, where /sys/fs/cgroup is read-only),
// in both modes: on the host's root filesystem, and in an image (layers
// built from the host's static busybox, executors/testing/busybox_image.h).
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "executors/testing/busybox_image.h"
#include "executors/testing/conformance.h"
#include "executors/testing/shell_program.h"

namespace kiln {
namespace conformance {
namespace {

class LocalSandboxHarness : public ExecutorHarness {
 public:
  LocalSandboxHarness(const ConformanceEnv& env, bool image_mode) {
    LocalSandboxOptions options;
    options.work_root = env.work_root;
    options.artifacts = env.artifacts;
    options.hidden_paths = DefaultHiddenPaths("");
    options.cgroups = LocalSandboxOptions::Cgroups::kOff;
    if (image_mode) {
      const char* tmp = getenv("TEST_TMPDIR");
      layers_root_ =
          absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/layers-XXXXXX");
      EXPECT_NE(mkdtemp(layers_root_.data()), nullptr);
      images_ = std::make_unique<BusyboxImageAccess>(layers_root_);
      absl::StatusOr<std::string> base = images_->BusyboxLayer("base");
      EXPECT_TRUE(base.ok()) << base.status();
      PreparedImage image;
      if (base.ok()) image.layer_dirs = {*base};
      image_ = TestReference("kiln.test/busybox");
      images_->Add(image_, image);
      options.images = images_.get();
    }
    absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
        LocalSandboxExecutor::Create(options);
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (executor.ok()) executor_ = std::move(*executor);
  }
  ~LocalSandboxHarness() override {
    executor_.reset();
    if (!layers_root_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(layers_root_, ignored);
    }
  }
  Executor* executor() override { return executor_.get(); }
  std::vector<std::string> Argv(const Program& program) override {
    return ShellArgv(program);
  }
  std::string Image() override { return image_; }

 private:
  std::string layers_root_;
  std::unique_ptr<BusyboxImageAccess> images_;
  std::string image_;
  std::unique_ptr<LocalSandboxExecutor> executor_;
};

ExecutorFactory HostFactory() {
  return ExecutorFactory{"local_sandbox", [](const ConformanceEnv& env) {
                           return std::make_unique<LocalSandboxHarness>(
                               env, /*image_mode=*/false);
                         }};
}

ExecutorFactory ImageFactory() {
  return ExecutorFactory{"local_sandbox_image", [](const ConformanceEnv& env) {
                           return std::make_unique<LocalSandboxHarness>(
                               env, /*image_mode=*/true);
                         }};
}

INSTANTIATE_TEST_SUITE_P(LocalSandbox, ExecutorConformanceTest,
                         ::testing::Values(HostFactory(), ImageFactory()),
                         ExecutorFactoryName);
INSTANTIATE_TEST_SUITE_P(LocalSandbox, ProcessExecutorConformanceTest,
                         ::testing::Values(HostFactory(), ImageFactory()),
                         ExecutorFactoryName);

}  // namespace
}  // namespace conformance
}  // namespace kiln
