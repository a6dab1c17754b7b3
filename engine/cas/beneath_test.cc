#include "engine/cas/beneath.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
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

// A name records its creator's start time: a live process that merely
// reuses the pid does not keep a dead creator's leftover forever, while the
// creator itself (same pid, same start) keeps its own.
TEST_P(BeneathTest, SweepTellsAReusedPidFromTheCreator) {
  const pid_t other = getppid();  // alive for the whole test
  const uint64_t start = ProcessStartTime(other);
  ASSERT_NE(start, 0u);
  std::string creator =
      absl::StrCat(".kiln-unstash-", other, "-", start, "-0123456789abcdef");
  std::string reused = absl::StrCat(".kiln-unstash-", other, "-", start + 7,
                                    "-0123456789abcdef");
  std::string older_mine =
      absl::StrCat(".kiln-unstash-", getpid(), "-",
                   ProcessStartTime(getpid()) - 1, "-0123456789abcdef");
  std::string mine = TempName("unstash");
  EXPECT_NE(mine.find(absl::StrCat("-", getpid(), "-",
                                   ProcessStartTime(getpid()), "-")),
            std::string::npos)
      << mine;
  for (const std::string& n : {creator, reused, older_mine, mine}) {
    ASSERT_EQ(mkdir((root_ + "/" + n).c_str(), 0755), 0) << n;
  }
  auto swept = SweepDeadTemps(root_fd_.get());
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, 2);
  EXPECT_TRUE(Exists(root_ + "/" + creator));
  EXPECT_FALSE(Exists(root_ + "/" + reused));
  EXPECT_FALSE(Exists(root_ + "/" + older_mine));
  EXPECT_TRUE(Exists(root_ + "/" + mine));
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

// Builds `levels` nested directories "d" below dir_fd holding only one
// descriptor at a time (as a task can), with a file and a symlink to
// `outside` at the bottom. False on failure.
bool MakeDeepChain(int dir_fd, int levels, const std::string& outside) {
  int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  for (int i = 0; i < levels && fd >= 0; ++i) {
    int next = -1;
    if (mkdirat(fd, "d", 0755) == 0) {
      next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    close(fd);
    fd = next;
  }
  if (fd < 0) return false;
  int file = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  bool ok = file >= 0 && symlinkat(outside.c_str(), fd, "out") == 0 &&
            fchmod(fd, 0555) == 0;
  if (file >= 0) close(file);
  close(fd);
  return ok;
}

// A task can make a tree deeper than the engine's descriptor limit (and
// deeper than PATH_MAX allows to name): removal neither runs out of
// descriptors nor follows the symlink at the bottom. Before, removal held
// one descriptor per level and gave up at the limit, leaking the tree.
TEST(RemoveTreeTest, TreeDeeperThanTheDescriptorLimitIsRemoved) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string base = absl::StrCat(tmp ? tmp : "/tmp", "/deep-XXXXXX");
  ASSERT_NE(mkdtemp(base.data()), nullptr);
  const std::string outside = base + "/outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
  Touch(outside + "/keep");
  ASSERT_EQ(mkdir((base + "/t").c_str(), 0755), 0);
  auto t = OpenTrustedDir(base + "/t");
  ASSERT_TRUE(t.ok()) << t.status();
  constexpr int kLevels = 6000;
  ASSERT_TRUE(MakeDeepChain(t->get(), kLevels, outside));
  // A second deep branch, so that moved-up subtrees meet other entries.
  ASSERT_EQ(mkdirat(t->get(), "e", 0755), 0);
  {
    auto e = OpenDirBeneath(t->get(), "e");
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(MakeDeepChain(e->get(), 300, outside));
  }
  t = UniqueFd();

  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit low = saved;
  low.rlim_cur = 128;  // far fewer than the tree's levels
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  absl::Status removed = RemoveTree(base + "/t");
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(removed.ok()) << removed;
  EXPECT_FALSE(Exists(base + "/t"));
  EXPECT_TRUE(Exists(outside + "/keep"));  // the links were not followed
  EXPECT_TRUE(RemoveTree(base).ok());
}

// The same through RemoveTreeBeneath (workspace cleanup's entry point).
TEST(RemoveTreeTest, DeepTreeBeneathARootIsRemoved) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string base = absl::StrCat(tmp ? tmp : "/tmp", "/deepb-XXXXXX");
  ASSERT_NE(mkdtemp(base.data()), nullptr);
  auto root = OpenTrustedDir(base);
  ASSERT_TRUE(root.ok()) << root.status();
  ASSERT_EQ(mkdirat(root->get(), "ws", 0755), 0);
  {
    auto ws = OpenDirBeneath(root->get(), "ws");
    ASSERT_TRUE(ws.ok()) << ws.status();
    ASSERT_TRUE(MakeDeepChain(ws->get(), 2 * kMaxRemovalDepth + 7, base));
  }
  EXPECT_TRUE(RemoveTreeBeneath(root->get(), "ws").ok());
  EXPECT_FALSE(Exists(base + "/ws"));
  EXPECT_TRUE(Exists(base));
  EXPECT_TRUE(RemoveTree(base).ok());
}

}  // namespace
}  // namespace kiln::cas
