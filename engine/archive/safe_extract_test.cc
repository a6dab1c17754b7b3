#include "engine/archive/safe_extract.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/archive/tar_writer.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln::archive {
namespace {

// A tar+zstd archive with implied parents and a multi-MiB file.
std::string Archive(const std::string& big) {
  std::string out;
  ZstdCompressor zstd(
      [&](absl::string_view b) {
        out.append(b.data(), b.size());
        return absl::OkStatus();
      },
      1);
  TarWriter tar([&](absl::string_view b) { return zstd.Write(b); });
  EXPECT_TRUE(tar.BeginFile("a/b/big", big.size(), false).ok());
  EXPECT_TRUE(tar.FileData(big).ok());
  EXPECT_TRUE(tar.EndFile().ok());
  EXPECT_TRUE(tar.AddSymlink("a/l", "b/big").ok());
  EXPECT_TRUE(tar.AddDirectory("a/empty").ok());
  EXPECT_TRUE(tar.Finish().ok());
  EXPECT_TRUE(zstd.Finish().ok());
  return out;
}

class SafeExtractTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(getenv("TEST_TMPDIR"), "/se-", cas::RandomSuffix());
    ASSERT_TRUE(cas::MakeDirs(dir_).ok());
  }
  void TearDown() override { ASSERT_TRUE(cas::RemoveTree(dir_).ok()); }
  std::string dir_;
};

TEST_P(SafeExtractTest, ReportsEveryEntryWithDigests) {
  std::string big(5 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 1000) big[i] = char(i / 1000);
  ExtractOptions opts;
  opts.prefetch = GetParam();
  auto entries =
      ExtractArchive(std::make_unique<StringSource>(Archive(big), 65536),
                     dir_ + "/new/out", opts);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 5u);  // a, a/b implied; big, l, empty
  EXPECT_EQ((*entries)[0].path, "a");
  EXPECT_EQ((*entries)[0].type, cas::EntryType::kDirectory);
  EXPECT_EQ((*entries)[1].path, "a/b");
  EXPECT_EQ((*entries)[2].path, "a/b/big");
  EXPECT_EQ((*entries)[2].digest, cas::Digest::Of(big));
  EXPECT_EQ((*entries)[2].digest.size(), 5 << 20);
  EXPECT_EQ((*entries)[3].link_target, "b/big");
  EXPECT_EQ(*cas::ReadSmallFile(dir_ + "/new/out/a/b/big"), big);
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/new/out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
}

TEST_P(SafeExtractTest, VerifierCanVetoAndNothingRemains) {
  ExtractOptions opts;
  opts.prefetch = GetParam();
  auto entries = ExtractArchive(
      std::make_unique<StringSource>(Archive("data")), dir_ + "/out", opts,
      [](const std::vector<cas::TreeEntry>&) {
        return absl::DataLossError("not the tree you asked for");
      });
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kDataLoss);
  struct stat st;
  EXPECT_NE(lstat((dir_ + "/out").c_str(), &st), 0);
  EXPECT_TRUE(cas::RemoveTree(dir_).ok());  // and no stray temp dirs:
  ASSERT_TRUE(cas::MakeDirs(dir_).ok());
}

TEST_P(SafeExtractTest, ModesIgnoreTheUmask) {
  ExtractOptions opts;
  opts.prefetch = GetParam();
  mode_t old = umask(077);
  auto entries = ExtractArchive(std::make_unique<StringSource>(Archive("d")),
                                dir_ + "/out", opts);
  umask(old);
  ASSERT_TRUE(entries.ok()) << entries.status();
  for (const char* dir : {"/out", "/out/a", "/out/a/b", "/out/a/empty"}) {
    struct stat st;
    ASSERT_EQ(lstat((dir_ + dir).c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << dir;
  }
  struct stat st;
  ASSERT_EQ(lstat((dir_ + "/out/a/b/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

// Replacing a symlink replaces the link; its target is never written.
TEST_P(SafeExtractTest, ExtractAtReplacesWithoutFollowing) {
  ASSERT_TRUE(cas::MakeDirs(dir_ + "/host/keep").ok());
  ASSERT_TRUE(cas::MakeDirs(dir_ + "/parent").ok());
  ASSERT_EQ(symlink((dir_ + "/host").c_str(), (dir_ + "/parent/out").c_str()),
            0);
  int parent = open((dir_ + "/parent").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(parent, 0);
  ExtractOptions opts;
  opts.prefetch = GetParam();
  auto refused = ExtractArchiveAt(std::make_unique<StringSource>(Archive("d")),
                                  parent, "out", dir_ + "/parent", opts);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  auto entries = ExtractArchiveAt(std::make_unique<StringSource>(Archive("d")),
                                  parent, "out", dir_ + "/parent", opts,
                                  nullptr, /*replace=*/true);
  close(parent);
  ASSERT_TRUE(entries.ok()) << entries.status();
  struct stat st;
  ASSERT_EQ(lstat((dir_ + "/parent/out/a/b/big").c_str(), &st), 0);
  EXPECT_NE(lstat((dir_ + "/host/a").c_str(), &st), 0);
  EXPECT_EQ(lstat((dir_ + "/host/keep").c_str(), &st), 0);
  EXPECT_EQ(*cas::ReadSmallFile(dir_ + "/parent/out/a/b/big"), "d");
}

// A small archive of zeros that expands far past its size is stopped while
// it streams: the error says why, and nothing (no target, no temp) stays.
TEST_P(SafeExtractTest, ExpansionBombStoppedAndNothingRemains) {
  std::string bomb = Archive(std::string(16 << 20, '\0'));
  ASSERT_LT(bomb.size(), 64u << 10);
  ExtractOptions opts;
  opts.prefetch = GetParam();
  opts.limits.max_expansion_ratio = 100;
  opts.limits.expansion_grace_bytes = 1 << 20;
  auto entries = ExtractArchive(std::make_unique<StringSource>(bomb, 4096),
                                dir_ + "/out", opts);
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(entries.status().message().find("decompression bomb"),
            absl::string_view::npos)
      << entries.status();
  DIR* d = opendir(dir_.c_str());
  ASSERT_NE(d, nullptr);
  int left = 0;
  while (dirent* e = readdir(d)) {
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") {
      ADD_FAILURE() << "left behind: " << e->d_name;
      ++left;
    }
  }
  closedir(d);
  EXPECT_EQ(left, 0);
  // The content bound refuses a file larger than allowed before writing it.
  ExtractOptions small;
  small.prefetch = GetParam();
  small.limits.max_total_bytes = 1 << 20;
  auto refused = ExtractArchive(std::make_unique<StringSource>(bomb, 4096),
                                dir_ + "/out", small);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("exceeds 1048576 bytes"),
            absl::string_view::npos)
      << refused.status();
}

INSTANTIATE_TEST_SUITE_P(Prefetch, SafeExtractTest, ::testing::Bool());

}  // namespace
}  // namespace kiln::archive
