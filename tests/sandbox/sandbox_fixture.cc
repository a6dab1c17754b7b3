#include "tests/sandbox/sandbox_fixture.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"

namespace kiln {
namespace sandbox_test {

std::string Outcome::Joined() const {
  return absl::StrCat("status=", v1::ExecStatus_Name(result.status()),
                      " exit=", result.exit_code(),
                      " message=", result.message(), "\nstdout:\n",
                      absl::StrJoin(out, "\n"), "\nstderr:\n",
                      absl::StrJoin(err, "\n"));
}

void SandboxFixture::SetUp() {
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/hostile-XXXXXX");
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  char resolved[PATH_MAX];
  ASSERT_NE(realpath(pattern.c_str(), resolved), nullptr);
  tmp_ = resolved;
  workspace_ = tmp_ + "/workspace";
  std::filesystem::create_directories(workspace_);
}

void SandboxFixture::SetUpExecutor(LocalSandboxOptions::Cgroups cgroups,
                                   std::vector<std::string> extra_hidden,
                                   bool with_defaults) {
  LocalSandboxOptions options;
  if (with_defaults) options.hidden_paths = DefaultHiddenPaths("");
  for (std::string& path : extra_hidden) {
    options.hidden_paths.push_back(std::move(path));
  }
  options.cgroups = cgroups;
  options.network_namespaces = network_namespaces_;
  options.default_kill_grace = absl::Milliseconds(500);
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
      LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  executor_ = std::move(*executor);
}

void SandboxFixture::TearDown() {
  std::error_code ignored;
  if (!tmp_.empty()) std::filesystem::remove_all(tmp_, ignored);
}

v1::ExecRequest SandboxFixture::ShellRequest(const std::string& script) {
  v1::ExecRequest request;
  request.set_run_id("hostile");
  request.set_task("task");
  request.add_argv("/bin/sh");
  request.add_argv("-c");
  request.add_argv(script);
  request.set_workspace(workspace_);
  (*request.mutable_env())["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  request.mutable_limits()->mutable_timeout()->set_seconds(60);
  return request;
}

Outcome SandboxFixture::Run(const v1::ExecRequest& request) {
  Outcome outcome;
  if (executor_ == nullptr) {
    ADD_FAILURE() << "no executor";
    return outcome;
  }
  conformance::RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      executor_->Start(request, &sink);
  EXPECT_TRUE(execution.ok()) << execution.status();
  if (!execution.ok()) return outcome;
  outcome.result = (*execution)->Wait();
  outcome.out = sink.Lines(v1::LogLine::STDOUT);
  outcome.err = sink.Lines(v1::LogLine::STDERR);
  return outcome;
}

Outcome SandboxFixture::RunShell(const std::string& script) {
  return Run(ShellRequest(script));
}

void SandboxFixture::ExpectHealthy() {
  Outcome outcome = RunShell("echo healthy; echo x > after.txt");
  EXPECT_EQ(outcome.result.status(), v1::EXITED) << outcome.Joined();
  EXPECT_EQ(outcome.result.exit_code(), 0) << outcome.Joined();
  EXPECT_THAT(outcome.out, ::testing::ElementsAre("healthy"));
  EXPECT_TRUE(std::filesystem::exists(workspace_ + "/after.txt"));
}

std::string SandboxFixture::UniqueToken(const std::string& what) {
  return absl::StrCat("kiln-", what, "-", getpid(), "-",
                      absl::ToUnixNanos(absl::Now()));
}

std::vector<int> SandboxFixture::ProcessesWithToken(const std::string& token) {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (struct dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"));
    std::stringstream cmdline;
    cmdline << in.rdbuf();
    if (cmdline.str().find(token) != std::string::npos) {
      pids.push_back(static_cast<int>(pid));
    }
  }
  closedir(proc);
  return pids;
}

}  // namespace sandbox_test
}  // namespace kiln
