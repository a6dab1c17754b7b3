#include "engine/cas/beneath.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

void Touch(const std::string& path) { std::ofstream(path) << "x"; }

// Each case runs with openat2 and with the O_NOFOLLOW walk.
class BeneathTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ForceComponentWalkForTesting(GetParam());
    const char* tmp = getenv("TEST_TMPDIR");
    base_ = absl::StrCat(tmp ? tmp : "/tmp", "/beneath-XXXXXX");
    ASSERT_NE(mkdtemp(base_.data()), nullptr);
    root_ = base_ + "/root";
    host_ = base_ + "/host";  // stands for /etc/cron.d
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(host_.c_str(), 0755), 0);
    Touch(host_ + "/keep");
    ASSERT_EQ(symlink(host_.c_str(), (root_ + "/link").c_str()), 0);
    ASSERT_EQ(mkdir((root_ + "/real").c_str(), 0755), 0);
    auto fd = OpenTrustedDir(root_);
    ASSERT_TRUE(fd.ok()) << fd.status();
    root_fd_ = std::move(*fd);
  }
  void TearDown() override {
    ForceComponentWalkForTesting(false);
    RemoveTree(base_).IgnoreError();
  }
  void ExpectHostUntouched() {
    EXPECT_TRUE(Exists(host_ + "/keep"));
    EXPECT_FALSE(Exists(host_ + "/x"));
    EXPECT_FALSE(Exists(host_ + "/y"));
  }

  std::string base_, root_, host_;
  UniqueFd root_fd_;
};

TEST_P(BeneathTest, SplitRejectsEscapes) {
  EXPECT_FALSE(SplitRelativePath("/etc").ok());
  EXPECT_FALSE(SplitRelativePath("a/../b").ok());
  EXPECT_FALSE(SplitRelativePath(std::string("a\0b", 3)).ok());
  auto parts = SplitRelativePath("./a//b/");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(*parts, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(SplitRelativePath(".")->empty());
}

TEST_P(BeneathTest, OpenRefusesSymlinkComponents) {
  EXPECT_TRUE(OpenDirBeneath(root_fd_.get(), "real").ok());
  EXPECT_TRUE(OpenDirBeneath(root_fd_.get(), ".").ok());
  auto through = OpenDirBeneath(root_fd_.get(), "link");
  EXPECT_TRUE(absl::IsInvalidArgument(through.status())) << through.status();
  EXPECT_NE(through.status().message().find("symlink"), std::string::npos);
  ASSERT_EQ(symlink("../link", (root_ + "/real/up").c_str()), 0);
  EXPECT_TRUE(absl::IsInvalidArgument(
      OpenDirBeneath(root_fd_.get(), "real/up").status()));
  EXPECT_TRUE(
      absl::IsNotFound(OpenDirBeneath(root_fd_.get(), "missing").status()));
  EXPECT_FALSE(OpenDirBeneath(root_fd_.get(), "../host").ok());
}

TEST_P(BeneathTest, MakeDirsNeverCreatesThroughASymlink) {
  auto made = MakeDirsBeneath(root_fd_.get(), "link/x/y");
  EXPECT_TRUE(absl::IsInvalidArgument(made.status())) << made.status();
  ExpectHostUntouched();
  made = MakeDirsBeneath(root_fd_.get(), "real/a/b");
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(Exists(root_ + "/real/a/b"));
}

TEST_P(BeneathTest, MakeDirsIgnoresTheUmask) {
  mode_t old = umask(077);
  auto made = MakeDirsBeneath(root_fd_.get(), "u/v", 0755);
  umask(old);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(ModeOf(root_ + "/u"), 0755u);
  EXPECT_EQ(ModeOf(root_ + "/u/v"), 0755u);
}

TEST_P(BeneathTest, RenameNeverReplaces) {
  Touch(root_ + "/a");
  ASSERT_EQ(symlink("/nonexistent", (root_ + "/dangling").c_str()), 0);
  EXPECT_TRUE(absl::IsAlreadyExists(
      RenameNoReplace(root_fd_.get(), "a", root_fd_.get(), "dangling")));
  EXPECT_TRUE(RenameNoReplace(root_fd_.get(), "a", root_fd_.get(), "b").ok());
  EXPECT_TRUE(Exists(root_ + "/b"));
}

TEST_P(BeneathTest, RemoveTreeRemovesLinksNotTargets) {
  ASSERT_EQ(symlink(host_.c_str(), (root_ + "/real/inner").c_str()), 0);
  EXPECT_TRUE(RemoveTreeBeneath(root_fd_.get(), "real").ok());
  EXPECT_FALSE(Exists(root_ + "/real"));
  EXPECT_TRUE(RemoveTreeBeneath(root_fd_.get(), "link").ok());
  EXPECT_FALSE(Exists(root_ + "/link"));
  ExpectHostUntouched();
  // Through a symlink: refused, nothing removed.
  ASSERT_EQ(symlink(host_.c_str(), (root_ + "/link2").c_str()), 0);
  EXPECT_FALSE(RemoveTreeBeneath(root_fd_.get(), "link2/keep").ok());
  ExpectHostUntouched();
  EXPECT_TRUE(RemoveTreeBeneath(root_fd_.get(), "missing/x").ok());
}

TEST_P(BeneathTest, SweepRemovesOnlyTempsOfDeadProcesses) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);  // a pid that is dead now
  std::string dead = absl::StrCat(".kiln-unstash-", child, "-0123456789abcdef");
  std::string old_form = absl::StrCat("out.kiln-unstash-", child);
  std::string mine = TempName("unstash");
  ASSERT_EQ(mkdir((root_ + "/" + dead).c_str(), 0755), 0);
  Touch(root_ + "/" + dead + "/f");
  ASSERT_EQ(mkdir((root_ + "/" + old_form).c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root_ + "/" + mine).c_str(), 0755), 0);
  Touch(root_ + "/.kiln-notes");  // not a temp name
  auto swept = SweepDeadTemps(root_fd_.get());
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, 2);
  EXPECT_FALSE(Exists(root_ + "/" + dead));
  EXPECT_FALSE(Exists(root_ + "/" + old_form));
  EXPECT_TRUE(Exists(root_ + "/" + mine));
  EXPECT_TRUE(Exists(root_ + "/.kiln-notes"));
}

INSTANTIATE_TEST_SUITE_P(Resolve, BeneathTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ComponentWalk" : "Openat2";
                         });

}  // namespace
}  // namespace kiln::cas

namespace kiln::cas {
namespace {

// A task (not root in the engine's eyes when kiln runs unprivileged) can
// leave directories of mode 0 and 0555 behind, and a symlink next to them:
// RemoveTree removes all of it as that same unprivileged user, and never
// changes the mode of what a symlink points to.
TEST(RemoveTreeTest, UnreadableAndReadOnlyDirsAreRemovedWithoutRoot) {
  char tmpl[] = "/tmp/kiln-rmtree-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string base = tmpl;
  ASSERT_EQ(chmod(base.c_str(), 0777), 0);
  const std::string outside = base + "-outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0500), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const std::string t = base + "/t";
    if (mkdir(t.c_str(), 0755) != 0) _exit(11);
    if (mkdir((t + "/locked").c_str(), 0755) != 0) _exit(12);
    std::ofstream((t + "/locked/f").c_str()) << "x";
    if (mkdir((t + "/ro").c_str(), 0755) != 0) _exit(13);
    std::ofstream((t + "/ro/g").c_str()) << "y";
    if (symlink(outside.c_str(), (t + "/link").c_str()) != 0) _exit(14);
    if (chmod((t + "/locked").c_str(), 0) != 0) _exit(15);
    if (chmod((t + "/ro").c_str(), 0555) != 0) _exit(16);
    if (!RemoveTree(t).ok()) _exit(17);
    struct stat st;
    _exit(lstat(t.c_str(), &st) == 0 ? 18 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  struct stat st;
  ASSERT_EQ(stat(outside.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0500u);  // the link's target is untouched
  EXPECT_TRUE(RemoveTree(base).ok());
  EXPECT_TRUE(RemoveTree(outside).ok());
}

}  // namespace
}  // namespace kiln::cas
