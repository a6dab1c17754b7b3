#include "engine/archive/tar_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/archive/safe_extract.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln::archive {
namespace {

std::string LongPath() {
  return absl::StrCat(std::string(150, 'a'), "/", std::string(120, 'b'), "/",
                      std::string(90, 'c'));
}

std::string Write() {
  std::string out;
  TarWriter tar([&](absl::string_view b) {
    out.append(b.data(), b.size());
    return absl::OkStatus();
  });
  EXPECT_TRUE(tar.AddDirectory("dir").ok());
  EXPECT_TRUE(tar.BeginFile("dir/run", 3, true).ok());
  EXPECT_TRUE(tar.FileData("a").ok());
  EXPECT_TRUE(tar.FileData("bc").ok());
  EXPECT_TRUE(tar.EndFile().ok());
  EXPECT_TRUE(tar.AddSymlink("dir/link", std::string(150, 't')).ok());
  EXPECT_TRUE(tar.BeginFile(LongPath(), 0, false).ok());
  EXPECT_TRUE(tar.EndFile().ok());
  EXPECT_TRUE(tar.Finish().ok());
  return out;
}

TEST(TarWriterTest, DeterministicBlocksWithNormalizedHeaders) {
  std::string a = Write();
  EXPECT_EQ(a, Write());
  EXPECT_EQ(a.size() % 512, 0u);
  // First header: the directory, ustar, mode 0755, uid/gid/mtime zero.
  EXPECT_EQ(a.substr(0, 4), "dir/");
  EXPECT_EQ(a.substr(100, 7), "0000755");
  EXPECT_EQ(a.substr(108, 7), "0000000");
  EXPECT_EQ(a.substr(116, 7), "0000000");
  EXPECT_EQ(a.substr(136, 11), "00000000000");
  EXPECT_EQ(a[156], '5');
  EXPECT_EQ(a.substr(257, 6), std::string("ustar\0", 6));
  EXPECT_EQ(a.substr(265, 32), std::string(32, '\0'));  // uname
  // Second header: the executable file.
  EXPECT_EQ(a.substr(512, 7), "dir/run");
  EXPECT_EQ(a.substr(512 + 100, 7), "0000755");
  EXPECT_EQ(a.substr(512 + 124, 11), "00000000003");
  // Ends with two zero blocks.
  EXPECT_EQ(a.substr(a.size() - 1024), std::string(1024, '\0'));
}

TEST(TarWriterTest, SizeMismatchIsAnError) {
  TarWriter tar([](absl::string_view) { return absl::OkStatus(); });
  ASSERT_TRUE(tar.BeginFile("f", 2, false).ok());
  EXPECT_FALSE(tar.FileData("abc").ok());
  ASSERT_TRUE(tar.FileData("a").ok());
  EXPECT_FALSE(tar.EndFile().ok());
  EXPECT_FALSE(tar.AddDirectory("d").ok());  // file still open
}

TEST(TarWriterTest, LongNamesRoundTripThroughPax) {
  std::string dir =
      absl::StrCat(getenv("TEST_TMPDIR"), "/tw-", cas::RandomSuffix());
  ASSERT_TRUE(cas::MakeDirs(dir).ok());
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  StringSource src(Write(), 700);
  auto entries = ExtractTarAt(&src, fd, ExtractLimits());
  close(fd);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(*cas::ReadSmallFile(dir + "/dir/run"), "abc");
  char target[200] = {};
  ASSERT_EQ(readlink((dir + "/dir/link").c_str(), target, sizeof(target)), 150);
  EXPECT_EQ(std::string(target), std::string(150, 't'));
  EXPECT_EQ(access((dir + "/" + LongPath()).c_str(), F_OK), 0);
  bool saw_exec = false;
  for (const auto& e : *entries) {
    if (e.path == "dir/run") {
      saw_exec = e.executable;
      EXPECT_EQ(e.digest, cas::Digest::Of("abc"));
    }
  }
  EXPECT_TRUE(saw_exec);
  ASSERT_TRUE(cas::RemoveTree(dir).ok());
}

}  // namespace
}  // namespace kiln::archive
