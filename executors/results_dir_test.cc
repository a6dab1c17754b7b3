#include "executors/results_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/remove_tree.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

class ResultsDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp ? tmp : "/tmp", "/results_dir_test_", getpid());
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    fd_ = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
    ASSERT_TRUE(MakeResultsDir(fd_, ".kiln-results").ok());
    dir_ = root_ + "/.kiln-results";
  }
  void TearDown() override {
    close(fd_);
    int parent = open(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp",
                      O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(RemoveTreeAt(parent, root_.substr(root_.rfind('/') + 1)).ok());
    close(parent);
  }
  void Write(const std::string& name, const std::string& text) {
    int f =
        open((dir_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(f, 0);
    ASSERT_EQ(write(f, text.data(), text.size()),
              static_cast<ssize_t>(text.size()));
    close(f);
  }

  std::string root_;
  std::string dir_;
  int fd_ = -1;
};

TEST_F(ResultsDirTest, ReadsEveryRegularFile) {
  Write("version", "1.2.3\n");
  Write("empty", "");
  auto read = ReadResultsDir(fd_, ".kiln-results");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ(read->at("version"), "1.2.3\n");
  EXPECT_EQ(read->at("empty"), "");
}

TEST_F(ResultsDirTest, AnExistingDirectoryIsNotReused) {
  EXPECT_TRUE(absl::IsAlreadyExists(MakeResultsDir(fd_, ".kiln-results")));
}

TEST_F(ResultsDirTest, NamesMustBeOneComponent) {
  for (const char* bad : {"", ".", "..", "a/b", "/abs"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(MakeResultsDir(fd_, bad))) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(ReadResultsDir(fd_, bad).status()))
        << bad;
  }
}

TEST_F(ResultsDirTest, ASymlinkIsRefusedNotFollowed) {
  std::string secret = root_ + "/secret";
  int f = open(secret.c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(f, 0);
  ASSERT_EQ(write(f, "host secret", 11), 11);
  close(f);
  ASSERT_EQ(symlink(secret.c_str(), (dir_ + "/version").c_str()), 0);
  auto read = ReadResultsDir(fd_, ".kiln-results");
  ASSERT_TRUE(absl::IsInvalidArgument(read.status())) << read.status();
  EXPECT_NE(read.status().message().find("symlink"), std::string::npos);
  EXPECT_EQ(read.status().message().find("host secret"), std::string::npos);
}

TEST_F(ResultsDirTest, TheDirectoryReplacedByASymlinkIsRefused) {
  ASSERT_EQ(rmdir(dir_.c_str()), 0);
  ASSERT_EQ(symlink("/etc", dir_.c_str()), 0);
  auto read = ReadResultsDir(fd_, ".kiln-results");
  EXPECT_TRUE(absl::IsInvalidArgument(read.status())) << read.status();
}

TEST_F(ResultsDirTest, AFifoOrDirectoryIsRefusedWithoutHanging) {
  ASSERT_EQ(mkfifo((dir_ + "/pipe").c_str(), 0644), 0);
  auto read = ReadResultsDir(fd_, ".kiln-results");
  ASSERT_TRUE(absl::IsInvalidArgument(read.status())) << read.status();
  EXPECT_NE(read.status().message().find("'pipe' is not a regular file"),
            std::string::npos);
  ASSERT_EQ(unlink((dir_ + "/pipe").c_str()), 0);
  ASSERT_EQ(mkdir((dir_ + "/sub").c_str(), 0755), 0);
  EXPECT_TRUE(
      absl::IsInvalidArgument(ReadResultsDir(fd_, ".kiln-results").status()));
}

TEST_F(ResultsDirTest, SizesAndCountsAreBounded) {
  Write("big", std::string(kMaxResultBytes + 1, 'x'));
  auto read = ReadResultsDir(fd_, ".kiln-results");
  ASSERT_TRUE(absl::IsResourceExhausted(read.status())) << read.status();
  EXPECT_NE(read.status().message().find("'big'"), std::string::npos);
  Write("big", std::string(kMaxResultBytes, 'x'));
  EXPECT_TRUE(ReadResultsDir(fd_, ".kiln-results").ok());
  // Four full results reach the total; a fifth byte exceeds it.
  for (int i = 0; i < 3; ++i) {
    Write(absl::StrCat("full", i), std::string(kMaxResultBytes, 'y'));
  }
  EXPECT_TRUE(ReadResultsDir(fd_, ".kiln-results").ok());
  Write("one-more", "z");
  EXPECT_TRUE(
      absl::IsResourceExhausted(ReadResultsDir(fd_, ".kiln-results").status()));
}

TEST_F(ResultsDirTest, EntriesAreBounded) {
  for (size_t i = 0; i <= kMaxResultEntries; ++i) {
    Write(absl::StrCat("r", i), "v");
  }
  auto read = ReadResultsDir(fd_, ".kiln-results");
  EXPECT_TRUE(absl::IsResourceExhausted(read.status())) << read.status();
}

}  // namespace
}  // namespace kiln
