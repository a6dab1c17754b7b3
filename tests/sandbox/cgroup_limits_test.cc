// Memory and pids limits through cgroup v1. Needs a writable
// /sys/fs/cgroup/{memory,pids}: tagged no-sandbox.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

// Without any per-task limit, the engine's defaults bound a fork bomb and a
// memory hog (here set low; the built-in defaults are documented in
// local_sandbox_executor.h).
TEST_F(CgroupLimitsTest, DefaultLimitsApplyWithoutPerTaskLimits) {
  LocalSandboxOptions options;
  options.cgroups = LocalSandboxOptions::Cgroups::kRequire;
  options.default_limits.max_pids = 20;
  options.default_limits.memory_bytes = 64 << 20;
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = std::move(*executor);

  std::string token = UniqueToken("default-bomb");
  v1::ExecRequest bomb = ShellRequest(
      absl::StrCat("i=0; while [ $i -lt 300 ]; do sh -c 'sleep 60; true' ",
                   token, " & i=$((i+1)); done; wait"));
  ASSERT_EQ(bomb.limits().max_pids(), 0u);
  Outcome bombed = Run(bomb);
  EXPECT_EQ(bombed.result.status(), v1::PIDS_LIMIT) << bombed.Joined();
  EXPECT_THAT(ProcessesWithToken(token), IsEmpty());

  v1::ExecRequest hog =
      ShellRequest("/usr/bin/python3 -c 'b = b\"x\" * (512 << 20)'");
  Outcome hogged = Run(hog);
  EXPECT_EQ(hogged.result.status(), v1::OUT_OF_MEMORY) << hogged.Joined();
  ExpectHealthy();
}

// After a SIGKILLed engine, its task cgroups stay behind; the next executor
// removes those whose owner is dead, and only those.
TEST(StaleCgroupsTest, RemovedAtStartUpWhenTheOwnerIsDead) {
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  std::string stale_name = absl::StrCat(dead, "-0-12345");
  std::string live_name = absl::StrCat(getpid(), "-live-owner");
  // The parent directories exist once an executor probed them.
  LocalSandboxOptions options;
  options.cgroups = LocalSandboxOptions::Cgroups::kRequire;
  ASSERT_TRUE(LocalSandboxExecutor::Create(options).ok());
  std::vector<std::string> stale, live;
  for (const char* controller : {"memory", "pids"}) {
    std::string dir = absl::StrCat("/sys/fs/cgroup/", controller, "/kiln/");
    stale.push_back(dir + stale_name);
    live.push_back(dir + live_name);
    ASSERT_EQ(mkdir(stale.back().c_str(), 0755), 0) << stale.back();
    ASSERT_EQ(mkdir(live.back().c_str(), 0755), 0) << live.back();
  }
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  EXPECT_GE((*executor)->stale_cgroups_removed(), 2);
  for (const std::string& path : stale) {
    EXPECT_NE(access(path.c_str(), F_OK), 0) << path << " was left behind";
  }
  for (const std::string& path : live) {
    EXPECT_EQ(access(path.c_str(), F_OK), 0) << path << " of a live owner";
    rmdir(path.c_str());
  }
}

}  // namespace
}  // namespace sandbox_test
}  // namespace kiln
