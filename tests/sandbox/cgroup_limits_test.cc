// Memory and pids limits through cgroup v1. Needs a writable
// /sys/fs/cgroup/{memory,pids}: tagged no-sandbox.
#include <dirent.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "tests/sandbox/sandbox_fixture.h"

namespace kiln {
namespace sandbox_test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Names of the per-execution cgroups under the `kiln` parent.
std::vector<std::string> TaskCgroups(const std::string& controller) {
  std::vector<std::string> names;
  std::string dir = absl::StrCat("/sys/fs/cgroup/", controller, "/kiln");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  std::string prefix = absl::StrCat(getpid(), "-");
  while (struct dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name.rfind(prefix, 0) == 0) names.push_back(name);
  }
  closedir(d);
  return names;
}

class CgroupLimitsTest : public SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    SetUpExecutor(LocalSandboxOptions::Cgroups::kRequire);
  }
  void TearDown() override {
    // Every execution removed its cgroups.
    EXPECT_THAT(TaskCgroups("memory"), IsEmpty());
    EXPECT_THAT(TaskCgroups("pids"), IsEmpty());
    SandboxFixture::TearDown();
  }
};

TEST_F(CgroupLimitsTest, ForkBombIsContainedByThePidsLimit) {
  std::string token = UniqueToken("bomb");
  v1::ExecRequest request = ShellRequest(
      absl::StrCat("i=0; while [ $i -lt 500 ]; do sh -c 'sleep 60; true' ",
                   token, " & i=$((i+1)); done; wait"));
  request.mutable_limits()->set_max_pids(20);
  absl::Time start = absl::Now();
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::PIDS_LIMIT) << outcome.Joined();
  EXPECT_THAT(outcome.result.message(), HasSubstr("process limit"));
  EXPECT_THAT(outcome.Joined(), HasSubstr("fork"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_THAT(ProcessesWithToken(token), IsEmpty());
  ExpectHealthy();
}

TEST_F(CgroupLimitsTest, MemoryHogIsOutOfMemory) {
  v1::ExecRequest request =
      ShellRequest("/usr/bin/python3 -c 'b = b\"x\" * (512 << 20)'");
  request.mutable_limits()->set_memory_bytes(64 << 20);
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::OUT_OF_MEMORY) << outcome.Joined();
  EXPECT_THAT(outcome.result.message(), HasSubstr("memory limit"));
  EXPECT_GT(outcome.result.max_rss_bytes(), 32u << 20);
  EXPECT_LE(outcome.result.max_rss_bytes(), 64u << 20);
  ExpectHealthy();
}

TEST_F(CgroupLimitsTest, WithinLimitsIsANormalExit) {
  v1::ExecRequest request = ShellRequest("echo fine; sleep 0.1 & wait");
  request.mutable_limits()->set_memory_bytes(256 << 20);
  request.mutable_limits()->set_max_pids(50);
  Outcome outcome = Run(request);
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_EQ(outcome.result.exit_code(), 0);
  EXPECT_EQ(outcome.result.message(), "");
}

}  // namespace
}  // namespace sandbox_test
}  // namespace kiln
