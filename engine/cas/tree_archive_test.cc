// WriteTreeArchive gives the same bytes whichever way it runs: trees of up
// to 1 MiB of files are archived on the calling thread, larger ones through
// a producer thread, from one caller or several at once. Each archive is
// checked against one reference: the tar stream of the walk, compressed in
// a single Write by a fresh compressor.
#include "engine/cas/tree_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/archive/tar_writer.h"
#include "engine/archive/zstd_stream.h"
#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

class TreeArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-tree-archive-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  void Write(const std::string& rel, const std::string& content,
             bool executable = false) {
    std::string path = dir_ + "/" + rel;
    std::ofstream(path, std::ios::binary) << content;
    ASSERT_EQ(chmod(path.c_str(), executable ? 0755 : 0644), 0);
  }
  static std::string Random(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(gen() % 7 == 0 ? gen() : 'k');
    return s;
  }

  // The archive WriteTreeArchive writes, and the reference bytes.
  void Archive(std::string* got, std::string* want) {
    int fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    absl::StatusOr<std::vector<WalkedEntry>> walked = WalkTree(fd, dir_);
    ASSERT_TRUE(walked.ok()) << walked.status();
    absl::StatusOr<std::vector<TreeEntry>> written =
        WriteTreeArchive(fd, dir_, *walked, 2, [got](absl::string_view b) {
          got->append(b.data(), b.size());
          return absl::OkStatus();
        });
    ASSERT_TRUE(written.ok()) << written.status();

    std::string tar;
    archive::TarWriter writer([&tar](absl::string_view b) {
      tar.append(b.data(), b.size());
      return absl::OkStatus();
    });
    for (const WalkedEntry& w : *walked) {
      switch (w.type) {
        case EntryType::kDirectory:
          ASSERT_TRUE(writer.AddDirectory(w.path).ok());
          break;
        case EntryType::kSymlink:
          ASSERT_TRUE(writer.AddSymlink(w.path, w.link_target).ok());
          break;
        case EntryType::kFile: {
          std::ifstream in(dir_ + "/" + w.path, std::ios::binary);
          std::string data((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
          ASSERT_TRUE(writer
                          .BeginFile(w.path, static_cast<int64_t>(data.size()),
                                     (w.stat.mode & S_IXUSR) != 0)
                          .ok());
          ASSERT_TRUE(writer.FileData(data).ok());
          ASSERT_TRUE(writer.EndFile().ok());
          break;
        }
      }
    }
    ASSERT_TRUE(writer.Finish().ok());
    archive::ZstdCompressor zstd(
        [want](absl::string_view b) {
          want->append(b.data(), b.size());
          return absl::OkStatus();
        },
        1);
    ASSERT_TRUE(zstd.Write(tar).ok());
    ASSERT_TRUE(zstd.Finish().ok());
    close(fd);
  }

  std::string dir_;
};

TEST_F(TreeArchiveTest, SmallTreeOnTheCallingThreadGivesTheReferenceBytes) {
  ASSERT_EQ(mkdir((dir_ + "/sub").c_str(), 0755), 0);
  Write("out", "0\n");
  Write("sub/tool", Random(70000, 1), true);
  Write("sub/empty", "");
  ASSERT_EQ(symlink("../out", (dir_ + "/sub/link").c_str()), 0);
  std::string got, want;
  Archive(&got, &want);
  EXPECT_FALSE(got.empty());
  EXPECT_EQ(got, want);
}

TEST_F(TreeArchiveTest, LargeTreeThroughTheProducerGivesTheReferenceBytes) {
  Write("a", Random(900 << 10, 2));
  Write("b", Random(5 << 20, 3));  // more than one zstd job
  std::string got, want;
  Archive(&got, &want);
  EXPECT_EQ(got, want);
}

TEST_F(TreeArchiveTest, ConcurrentArchivesStayExact) {
  Write("a", Random(3 << 20, 4));
  Write("b", "small\n");
  std::string want;
  {
    std::string got;
    Archive(&got, &want);
    ASSERT_EQ(got, want);
  }
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  for (std::string& g : got) {
    threads.emplace_back([this, &g] {
      std::string ignored;
      Archive(&g, &ignored);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& g : got) EXPECT_EQ(g, want);
}

}  // namespace
}  // namespace kiln::cas
