#include "tests/deploy/deploy_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/testing/files.h"
#include "kube/testing/process.h"

extern char** environ;

namespace kiln::deploy_testing {

using kube::testing::FakeApiServer;

void DeployFixture::SetUp() {
  kiln_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                       std::getenv("TEST_WORKSPACE"), "/kiln");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ = test_files::TempDir(absl::StrCat(info->test_suite_name(), "."),
                             info->name());
  auto server = FakeApiServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  kubeconfig_ = dir_ + "/kubeconfig";
  ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
}

void DeployFixture::TearDown() {
  rollouts_.reset();
  server_.reset();
}

void DeployFixture::StartRollouts() {
  ASSERT_NE(server_, nullptr);
  rollouts_ = kube::testing::RolloutController::Start(server_.get());
}

void DeployFixture::Write(const std::string& rel,
                          const std::string& text) const {
  test_files::WriteFile(dir_ + "/" + rel, text);
}

KilnResult DeployFixture::RunKiln(const std::vector<std::string>& args,
                                  Stderr stderr_to) const {
  const std::string out = absl::StrCat(dir_, "/out.", runs_++);
  const std::string err = out + ".err";
  // Everything the child needs is built before fork: the double's threads
  // may hold locks (malloc's among them) at the moment of the fork.
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kiln_.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  const std::string store = dir_ + "/store";
  argv.push_back(const_cast<char*>("--store"));
  argv.push_back(const_cast<char*>(store.c_str()));
  argv.push_back(nullptr);
  const std::string home = "HOME=" + dir_;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "KUBECONFIG=", 11) == 0 ||
        std::strncmp(*e, "HOME=", 5) == 0) {
      continue;
    }
    envp.push_back(*e);
  }
  envp.push_back(const_cast<char*>(home.c_str()));
  envp.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int efd = stderr_to == Stderr::kMerged
                  ? fd
                  : open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || efd < 0) _exit(126);
    dup2(fd, 1);
    dup2(efd, 2);
    execve(kiln_.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  KilnResult r;
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return r;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "kiln did not finish in time";
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = test_files::ReadFile(out);
  if (stderr_to == Stderr::kSeparate) r.err = test_files::ReadFile(err);
  return r;
}

std::pair<int, std::string> DeployFixture::Kubectl(
    const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig_,
                                   "--cache-dir", dir_ + "/kube-cache"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = kube::testing::RunProcess(
      argv, {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}}, absl::Seconds(60));
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {-1, ""};
  return *r;
}

}  // namespace kiln::deploy_testing
