// Hostile archives against safe extraction: every one is rejected with a
// clear error, nothing is written outside the target, and no partial output
// is left behind.
//
// With KILN_WRITE_CORPUS=DIR set, also writes every archive to DIR (the
// seeds of the unstash fuzzer's corpus).
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/archive/safe_extract.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"
#include "tests/archive/archive_builder.h"

namespace kiln::archive {
namespace {

using ::kiln::testing::BuildTar;
using ::kiln::testing::RawEntry;
using ::kiln::testing::Zstd;

RawEntry File(std::string path, std::string content, int mode = 0644) {
  RawEntry e;
  e.path = std::move(path);
  e.type = AE_IFREG;
  e.mode = mode;
  e.content = std::move(content);
  return e;
}
RawEntry Dir(std::string path, int mode = 0755) {
  RawEntry e;
  e.path = std::move(path);
  e.type = AE_IFDIR;
  e.mode = mode;
  return e;
}
RawEntry Link(std::string path, std::string target) {
  RawEntry e;
  e.path = std::move(path);
  e.type = AE_IFLNK;
  e.mode = 0777;
  e.symlink = std::move(target);
  return e;
}
RawEntry Special(std::string path, mode_t type) {
  RawEntry e;
  e.path = std::move(path);
  e.type = type;
  return e;
}

class MaliciousArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = absl::StrCat(getenv("TEST_TMPDIR"), "/mal-", cas::RandomSuffix());
    outside_ = base_ + "/outside";
    target_ = base_ + "/work/out";
    ASSERT_TRUE(cas::MakeDirs(outside_).ok());
    ASSERT_TRUE(cas::MakeDirs(base_ + "/work").ok());
    std::ofstream(outside_ + "/host-file") << "host data";
  }
  void TearDown() override { ASSERT_TRUE(cas::RemoveTree(base_).ok()); }

  // Extracts; on failure checks that nothing is left behind and that the
  // outside directory is untouched.
  absl::Status Extract(const std::string& compressed, ExtractOptions opts) {
    static int counter = 0;
    if (const char* dir = getenv("KILN_WRITE_CORPUS")) {
      std::ofstream(
          absl::StrCat(
              dir, "/",
              ::testing::UnitTest::GetInstance()->current_test_info()->name(),
              "-", counter++, ".tar.zst"),
          std::ios::binary)
          << compressed;
    }
    absl::StatusOr<std::vector<cas::TreeEntry>> r = ExtractArchive(
        std::make_unique<StringSource>(compressed, 4096), target_, opts);
    if (!r.ok()) {
      struct stat st;
      EXPECT_NE(lstat(target_.c_str(), &st), 0) << "target left behind";
      EXPECT_EQ(Listing(base_ + "/work"), "") << "partial output left";
    }
    EXPECT_EQ(Listing(outside_), "host-file") << "wrote outside the target";
    EXPECT_EQ(*cas::ReadSmallFile(outside_ + "/host-file"), "host data");
    return r.status();
  }
  absl::Status Extract(const std::vector<RawEntry>& entries) {
    return Extract(Zstd(BuildTar(entries)), ExtractOptions());
  }
  static std::string Listing(const std::string& dir) {
    std::string out;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return "<missing>";
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      out += out.empty() ? n : " " + n;
    }
    closedir(d);
    return out;
  }
  static void ExpectError(const absl::Status& st, absl::StatusCode code,
                          const std::string& words) {
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_NE(st.message().find(words), std::string::npos)
        << "\"" << st.message() << "\" lacks \"" << words << "\"";
  }

  std::string base_, outside_, target_;
};

TEST_F(MaliciousArchiveTest, DotDotIsRejected) {
  ExpectError(Extract({File("ok", "1"), File("../outside/evil", "x")}),
              absl::StatusCode::kInvalidArgument, "\"..\" component");
  ExpectError(Extract({File("a/../../../outside/evil", "x")}),
              absl::StatusCode::kInvalidArgument, "\"..\" component");
  ExpectError(Extract({Link("l", "x"), Link("../outside/l2", "x")}),
              absl::StatusCode::kInvalidArgument, "\"..\" component");
}

TEST_F(MaliciousArchiveTest, AbsolutePathIsRejected) {
  ExpectError(Extract({File("/kiln-absolute-escape/evil", "x")}),
              absl::StatusCode::kInvalidArgument, "absolute path");
  struct stat st;
  EXPECT_NE(lstat("/kiln-absolute-escape", &st), 0);
}

TEST_F(MaliciousArchiveTest, WriteThroughSymlinkIsRejected) {
  // Relative to the target, "../../outside" is this test's outside dir.
  ExpectError(Extract({Link("esc", "../../outside"), File("esc/pwned", "x")}),
              absl::StatusCode::kInvalidArgument, "goes through symlink");
  ExpectError(Extract({Link("esc", "../../outside"), Dir("esc/sub"),
                       File("esc/sub/p", "")}),
              absl::StatusCode::kInvalidArgument, "goes through symlink");
  // Replacing the link by a file of the same name is a duplicate.
  ExpectError(Extract({Link("esc", "../../outside/host-file"),
                       File("esc", "overwrite")}),
              absl::StatusCode::kInvalidArgument, "duplicate entry");
}

TEST_F(MaliciousArchiveTest, HardlinkToHostFileIsRejected) {
  RawEntry hard = File("h", "");
  hard.hardlink = "/etc/passwd";
  ExpectError(Extract({hard}), absl::StatusCode::kInvalidArgument, "hardlink");
  RawEntry rel = File("h2", "");
  rel.hardlink = "../../outside/host-file";
  ExpectError(Extract({File("a", "1"), rel}),
              absl::StatusCode::kInvalidArgument, "hardlink");
}

TEST_F(MaliciousArchiveTest, DevicesAndFifosAreRejected) {
  ExpectError(Extract({Special("null", AE_IFCHR)}),
              absl::StatusCode::kInvalidArgument, "character device");
  ExpectError(Extract({Special("disk", AE_IFBLK)}),
              absl::StatusCode::kInvalidArgument, "block device");
  ExpectError(Extract({Special("pipe", AE_IFIFO)}),
              absl::StatusCode::kInvalidArgument, "FIFO");
}

TEST_F(MaliciousArchiveTest, SetuidSetgidAndStickyBitsAreMasked) {
  ASSERT_TRUE(Extract({Dir("d", 07777), File("d/suid", "x", 04755),
                       File("d/sgid", "y", 02755), File("d/world", "z", 0666)})
                  .ok());
  struct stat st;
  ASSERT_EQ(stat((target_ + "/d/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((target_ + "/d/sgid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((target_ + "/d/world").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_EQ(stat((target_ + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07000, 0u);
}

TEST_F(MaliciousArchiveTest, DecompressionBombIsCapped) {
  ExtractOptions opts;
  opts.limits.max_total_bytes = 1 << 20;
  opts.limits.max_entries = 16;
  std::string bomb = Zstd(BuildTar({File("zeros", std::string(64 << 20, 0))}));
  ASSERT_LT(bomb.size(), 64u << 10);
  ExpectError(Extract(bomb, opts), absl::StatusCode::kResourceExhausted,
              "exceeds");
  // Many medium files that add up.
  std::vector<RawEntry> many;
  for (int i = 0; i < 8; ++i) {
    many.push_back(File(absl::StrCat("f", i), std::string(200 << 10, 'a')));
  }
  ExpectError(Extract(Zstd(BuildTar(many)), opts),
              absl::StatusCode::kResourceExhausted, "exceeds");
  // Padding bombs after the end of the tar are capped by the decompressor.
  std::string padded = BuildTar({File("a", "x")}) + std::string(64 << 20, 0);
  absl::Status st = Extract(Zstd(padded), opts);
  EXPECT_TRUE(st.ok() || absl::IsResourceExhausted(st)) << st;
}

TEST_F(MaliciousArchiveTest, TooManyEntriesIsCapped) {
  ExtractOptions opts;
  opts.limits.max_entries = 100;
  std::vector<RawEntry> entries;
  for (int i = 0; i < 1000; ++i) entries.push_back(File(absl::StrCat(i), ""));
  ExpectError(Extract(Zstd(BuildTar(entries)), opts),
              absl::StatusCode::kResourceExhausted, "more than 100 entries");
}

TEST_F(MaliciousArchiveTest, LongPathsAreCapped) {
  ExtractOptions opts;
  opts.limits.max_path_length = 256;
  ExpectError(Extract(Zstd(BuildTar({File(std::string(300, 'p'), "x")})), opts),
              absl::StatusCode::kResourceExhausted, "path longer than 256");
  ExpectError(Extract(Zstd(BuildTar({Link("l", std::string(300, 't'))})), opts),
              absl::StatusCode::kResourceExhausted, "target is too long");
}

TEST_F(MaliciousArchiveTest, DuplicateEntriesAreRejected) {
  ExpectError(Extract({File("a", "1"), File("a", "2")}),
              absl::StatusCode::kInvalidArgument, "duplicate entry");
  ExpectError(Extract({Dir("d"), Dir("d")}), absl::StatusCode::kInvalidArgument,
              "duplicate entry");
  ExpectError(Extract({File("x/y", "1"), File("./x/y", "2")}),
              absl::StatusCode::kInvalidArgument, "duplicate entry");
}

TEST_F(MaliciousArchiveTest, TruncatedAndCorruptStreamsAreRejected) {
  std::vector<RawEntry> entries = {File("a", std::string(100000, 'a')),
                                   File("b", std::string(50000, 'b'))};
  std::string tar = BuildTar(entries);
  std::string zst = Zstd(tar);
  ExpectError(Extract(zst.substr(0, zst.size() / 2), ExtractOptions()),
              absl::StatusCode::kDataLoss, "truncated zstd stream");
  ExpectError(Extract(zst.substr(0, 4), ExtractOptions()),
              absl::StatusCode::kDataLoss, "zstd");
  ExpectError(Extract("", ExtractOptions()), absl::StatusCode::kDataLoss,
              "empty archive stream");
  ExpectError(Extract("this is no archive at all", ExtractOptions()),
              absl::StatusCode::kDataLoss, "corrupt zstd stream");
  // A well-formed zstd frame around a tar cut in the middle of a file.
  ExpectError(Extract(Zstd(tar.substr(0, 512 + 40000)), ExtractOptions()),
              absl::StatusCode::kDataLoss, "Truncated tar archive");
  // A tar header whose checksum does not match.
  std::string bad = tar;
  bad[10] ^= 0x7f;
  absl::Status st = Extract(Zstd(bad), ExtractOptions());
  EXPECT_FALSE(st.ok());
  // Random bytes inside a valid zstd frame.
  std::string junk(10000, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 7);
  EXPECT_FALSE(Extract(Zstd(junk), ExtractOptions()).ok());
}

TEST_F(MaliciousArchiveTest, TargetMustBeNewOrEmpty) {
  ASSERT_TRUE(cas::MakeDirs(target_).ok());
  std::ofstream(target_ + "/mine") << "keep";
  absl::StatusOr<std::vector<cas::TreeEntry>> r = ExtractArchive(
      std::make_unique<StringSource>(Zstd(BuildTar({File("mine", "x")}))),
      target_, ExtractOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*cas::ReadSmallFile(target_ + "/mine"), "keep");
}

// A symlink swapped in for a directory while extracting is never followed.
TEST_F(MaliciousArchiveTest, SymlinkSwappedInDuringExtractionIsNotFollowed) {
  for (bool keep_open : {false, true}) {
    ExtractOptions opts;
    opts.prefetch = false;
    std::string swapped_in;
    opts.after_entry_for_testing = [&](const std::string& dir,
                                       const cas::TreeEntry& e) {
      if (e.path != (keep_open ? "d/first" : "d")) return;
      // Move the real directory away and put a link to outside in its place.
      ASSERT_EQ(rename((dir + "/d").c_str(), (dir + "/moved").c_str()), 0);
      ASSERT_EQ(symlink(outside_.c_str(), (dir + "/d").c_str()), 0);
      swapped_in = dir;
    };
    absl::Status st = Extract(
        Zstd(BuildTar({Dir("d"), File("d/first", "1"), File("d/second", "2"),
                       Dir("e"), File("d/third", "3")})),
        opts);
    EXPECT_FALSE(swapped_in.empty());
    // Either the write lands in the real (moved) directory or the reopen
    // through the link fails; never a file in `outside`.
    if (st.ok()) {
      EXPECT_TRUE(keep_open);
      ASSERT_TRUE(cas::RemoveTree(target_).ok());
    } else {
      EXPECT_NE(st.message().find("replaced while extracting"),
                std::string::npos)
          << st;
    }
  }
}

TEST_F(MaliciousArchiveTest, OrdinaryArchivesStillWork) {
  RawEntry exec = File("bin/tool", "#!/bin/sh\n", 0700);
  ASSERT_TRUE(Extract({Dir("./"), Dir("./bin"), exec, Link("bin/sh", "tool"),
                       File("deep/implied/parents", "p"), Dir("deep")})
                  .ok());
  EXPECT_EQ(*cas::ReadSmallFile(target_ + "/deep/implied/parents"), "p");
  struct stat st;
  ASSERT_EQ(stat((target_ + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

}  // namespace
}  // namespace kiln::archive
