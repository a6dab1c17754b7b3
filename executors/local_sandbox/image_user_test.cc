// Resolving an image's user from its layers: top layer first, whiteouts and
// opaque directories honoured, no symlink followed, bounded reads.
#include "executors/local_sandbox/image_user.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "executors/testing/busybox_image.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace sandbox {
namespace {

using ::kiln::conformance::MakeOpaqueDir;
using ::kiln::conformance::MakeWhiteout;
using ::kiln::conformance::WriteLayerFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ImageUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/user-XXXXXX");
    ASSERT_NE(mkdtemp(root_.data()), nullptr);
    base_ = Layer("base");
    ASSERT_TRUE(WriteLayerFile(base_, "etc/passwd",
                               "root:x:0:0::/root:/bin/sh\n"
                               "# a comment line\n"
                               "broken line\n"
                               "app:x:500:600::/app:/bin/sh\n")
                    .ok());
    ASSERT_TRUE(WriteLayerFile(base_, "etc/group",
                               "root:x:0:\napp:x:600:\nextra:x:700:other,app\n"
                               "more:x:800:app\n")
                    .ok());
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  std::string Layer(const std::string& name) {
    std::string dir = absl::StrCat(root_, "/", name);
    EXPECT_EQ(mkdir(dir.c_str(), 0755), 0);
    return dir;
  }

  std::string root_;
  std::string base_;
};

TEST_F(ImageUserTest, NamesNumbersAndGroups) {
  absl::StatusOr<ImageIdentity> id = ResolveImageUser({base_}, "app");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uid, 500u);
  EXPECT_EQ(id->gid, 600u);
  EXPECT_THAT(id->groups, ElementsAre(700u, 800u));
  id = ResolveImageUser({base_}, "500");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->gid, 600u);
  EXPECT_THAT(id->groups, ElementsAre(700u, 800u));
  id = ResolveImageUser({base_}, "4242");  // not listed: gid 0
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uid, 4242u);
  EXPECT_EQ(id->gid, 0u);
  EXPECT_TRUE(id->groups.empty());
  id = ResolveImageUser({base_}, "app:extra");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->gid, 700u);
  EXPECT_TRUE(id->groups.empty());
  id = ResolveImageUser({base_}, "");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uid, 0u);
  for (const char* bad : {"ghost", "app:ghost", ":1", "app:", "4294967295"}) {
    EXPECT_FALSE(ResolveImageUser({base_}, bad).ok()) << bad;
  }
}

TEST_F(ImageUserTest, TheTopLayerWinsAndWhiteoutsHide) {
  std::string top = Layer("top");
  ASSERT_TRUE(
      WriteLayerFile(top, "etc/passwd", "app:x:501:601::/:/bin/sh\n").ok());
  absl::StatusOr<ImageIdentity> id = ResolveImageUser({base_, top}, "app");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uid, 501u);
  std::string gone = Layer("gone");
  ASSERT_TRUE(MakeWhiteout(gone, "etc/passwd").ok());
  EXPECT_TRUE(
      absl::IsNotFound(ResolveImageUser({base_, gone}, "app").status()));
  EXPECT_TRUE(
      absl::IsNotFound(ReadImageFile({base_, gone}, "etc/passwd").status()));
  // An opaque /etc without passwd hides the lower one too.
  std::string opaque = Layer("opaque");
  ASSERT_TRUE(MakeOpaqueDir(opaque, "etc").ok());
  EXPECT_TRUE(
      absl::IsNotFound(ReadImageFile({base_, opaque}, "etc/passwd").status()));
  // A plain directory does not.
  std::string plain = Layer("plain");
  ASSERT_EQ(mkdir((plain + "/etc").c_str(), 0755), 0);
  EXPECT_TRUE(ReadImageFile({base_, plain}, "etc/passwd").ok());
}

TEST_F(ImageUserTest, SymlinksAndHugeFilesAreRefused) {
  std::string linked = Layer("linked");
  ASSERT_EQ(symlink("/etc", (linked + "/etc").c_str()), 0);
  absl::StatusOr<std::string> read =
      ReadImageFile({base_, linked}, "etc/passwd");
  EXPECT_TRUE(absl::IsFailedPrecondition(read.status())) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("symlink"));
  std::string huge = Layer("huge");
  ASSERT_TRUE(WriteLayerFile(huge, "etc/passwd",
                             std::string(kMaxImageAccountFileBytes + 1, 'x'))
                  .ok());
  read = ReadImageFile({base_, huge}, "etc/passwd");
  EXPECT_TRUE(absl::IsFailedPrecondition(read.status())) << read.status();
  std::string fifo = Layer("fifo");
  ASSERT_EQ(mkdir((fifo + "/etc").c_str(), 0755), 0);
  ASSERT_EQ(mkfifo((fifo + "/etc/passwd").c_str(), 0644), 0);
  read = ReadImageFile({base_, fifo}, "etc/passwd");
  EXPECT_TRUE(absl::IsFailedPrecondition(read.status())) << read.status();
}

}  // namespace
}  // namespace sandbox
}  // namespace kiln
