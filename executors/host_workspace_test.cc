#include "executors/host_workspace.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/remove_tree.h"
#include "executors/testing/memory_artifact_access.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

class RemoveTreeAtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::string(getenv("TEST_TMPDIR")) + "/hw-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  std::string root_;
};

TEST_F(RemoveTreeAtTest, NeverFollowsALinkOutAndRemovesLockedDirs) {
  std::filesystem::create_directories(root_ + "/host/keep");
  std::ofstream(root_ + "/host/keep/file") << "precious";
  std::filesystem::create_directories(root_ + "/ws/a/locked/deep");
  std::ofstream(root_ + "/ws/a/locked/deep/f") << "x";
  ASSERT_EQ(symlink((root_ + "/host").c_str(), (root_ + "/ws/out").c_str()), 0);
  ASSERT_EQ(
      symlink((root_ + "/host/keep").c_str(), (root_ + "/ws/a/in").c_str()), 0);
  ASSERT_EQ(chmod((root_ + "/ws/a/locked").c_str(), 0), 0);
  int dir = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  absl::Status removed = RemoveTreeAt(dir, "ws");
  close(dir);
  EXPECT_TRUE(removed.ok()) << removed;
  EXPECT_FALSE(std::filesystem::exists(root_ + "/ws"));
  std::ifstream in(root_ + "/host/keep/file");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious") << "the link's target is untouched";
}

TEST(CheckRequestModeTest, RefusesImagesAndMixedModes) {
  v1::ExecRequest host;
  host.set_workspace("/w");
  EXPECT_TRUE(CheckRequestMode(host).ok());
  v1::ExecRequest image;
  image.set_image("golang:1.22");
  EXPECT_TRUE(absl::IsInvalidArgument(CheckRequestMode(image)));
  v1::ExecRequest mixed = host;
  mixed.add_outputs()->set_artifact("o");
  EXPECT_TRUE(absl::IsInvalidArgument(CheckRequestMode(mixed)));
  v1::ExecRequest free;
  free.add_inputs()->set_digest("d");
  EXPECT_TRUE(CheckRequestMode(free).ok());
  // An executor with images accepts one; the modes still do not mix.
  EXPECT_TRUE(CheckRequestMode(image, /*images_supported=*/true).ok());
  mixed.set_image("golang:1.22");
  EXPECT_TRUE(absl::IsInvalidArgument(
      CheckRequestMode(mixed, /*images_supported=*/true)));
}

TEST(StartInHostWorkspaceTest, RefusedWithoutArtifactAccessOrWorkRoot) {
  v1::ExecRequest request;
  request.add_argv("x");
  auto never =
      [](const v1::ExecRequest&) -> absl::StatusOr<std::unique_ptr<Execution>> {
    ADD_FAILURE() << "nothing may start";
    return absl::InternalError("started");
  };
  HostWorkspaceOptions none;
  EXPECT_TRUE(absl::IsInvalidArgument(
      StartInHostWorkspace(request, none, never).status()));
}

// Records, in order, what happened to one staged execution.
class Journal {
 public:
  void Add(const std::string& step) {
    MutexLock lock(&mu_);
    steps_.push_back(step);
  }
  std::vector<std::string> steps() {
    MutexLock lock(&mu_);
    return steps_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> steps_;
};

class JournaledAccess : public conformance::MemoryArtifactAccess {
 public:
  explicit JournaledAccess(Journal* journal) : journal_(journal) {}
  absl::StatusOr<std::string> Capture(
      int workspace_fd, const std::vector<std::string>& paths) override {
    journal_->Add("capture");
    return MemoryArtifactAccess::Capture(workspace_fd, paths);
  }

 private:
  Journal* journal_;
};

// The command writes `out` and exits 0 when Wait() is called.
class WritingExecution : public Execution {
 public:
  WritingExecution(std::string workspace, Journal* journal)
      : workspace_(std::move(workspace)), journal_(journal) {}
  v1::ExecResult Wait() override {
    std::ofstream(workspace_ + "/out") << "made";
    journal_->Add("command");
    v1::ExecResult result;
    result.set_status(v1::EXITED);
    result.set_exit_code(0);
    return result;
  }
  void Cancel() override {}

 private:
  std::string workspace_;
  Journal* journal_;
};

// A scratch directory for the staged execution's workspaces.
class StagedExecutionTest : public RemoveTreeAtTest {};

// command_done comes once, after the command and before its outputs are
// captured (the scheduler frees the task's slot then), also when the
// options come from MergeHostWorkspace's fallback.
TEST_F(StagedExecutionTest, CommandDoneComesBetweenTheCommandAndTheCapture) {
  Journal journal;
  JournaledAccess access(&journal);
  HostWorkspaceOptions fallback;
  fallback.work_root = root_ + "/work";
  fallback.artifacts = &access;
  fallback.command_done = [&journal] { journal.Add("command done"); };
  HostWorkspaceOptions options =
      MergeHostWorkspace(HostWorkspaceOptions(), fallback);
  v1::ExecRequest request;
  request.add_argv("true");
  v1::ExecOutput* output = request.add_outputs();
  output->set_artifact("o");
  output->add_paths("out");
  absl::StatusOr<std::unique_ptr<Execution>> started = StartInHostWorkspace(
      request, options, [&journal](const v1::ExecRequest& inner) {
        return absl::StatusOr<std::unique_ptr<Execution>>(
            std::make_unique<WritingExecution>(inner.workspace(), &journal));
      });
  ASSERT_TRUE(started.ok()) << started.status();
  v1::ExecResult result = (*started)->Wait();
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.outputs().count("o"), 1u);
  EXPECT_EQ(journal.steps(),
            (std::vector<std::string>{"command", "command done", "capture"}));
}

}  // namespace
}  // namespace kiln
