// No damaged or swapped archive blob passes unstash (files are hashed on a
// worker thread, the blob on the decompression thread, and the tree is
// checked; see ArtifactStore::VerifiedUnstash), whether the archive's tree
// is on record (a local stash) or only claimed (as from a remote).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

class UnstashIntegrityTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    tmp_ = absl::StrCat(getenv("TEST_TMPDIR"), "/ui-", RandomSuffix());
    ASSERT_TRUE(MakeDirs(tmp_).ok());
    auto s = ArtifactStore::Open(tmp_ + "/store");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    // Text compresses (zstd sequences), random-ish bytes stay literals:
    // damage lands in both kinds of block.
    std::string text;
    for (int i = 0; text.size() < 400000; ++i) {
      text += absl::StrCat("line ", i, " level=info value=", i * 7919, "\n");
    }
    std::string noise;
    uint32_t x = 12345;
    for (int i = 0; i < 300000; ++i) {
      x = x * 1103515245 + 12345;
      noise.push_back(static_cast<char>(x >> 24));
    }
    Write(tmp_ + "/t/a.txt", text);
    Write(tmp_ + "/t/sub/b.bin", noise);
    Write(tmp_ + "/t/sub/c", "small");
    auto r = store_->Stash(tmp_ + "/t");
    ASSERT_TRUE(r.ok()) << r.status();
    tree_ = r->tree;
    archive_ = r->archive;
    if (!GetParam()) return;
    // Claim mode: a second store that only has the blob and an unverified
    // claim (no by-archive record), as when it came from a remote.
    auto other = ArtifactStore::Open(tmp_ + "/claim-store");
    ASSERT_TRUE(other.ok()) << other.status();
    auto bytes = store_->blobs().Get(archive_);
    ASSERT_TRUE(bytes.ok());
    ASSERT_TRUE((*other)->blobs().Put(*bytes).ok());
    ASSERT_TRUE((*other)->RegisterArchive(tree_, archive_).ok());
    store_ = std::move(*other);
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(tmp_).ok()); }

  static void Write(const std::string& path, const std::string& content) {
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  }
  bool HasRecord() const {
    struct stat sb;
    return lstat(absl::StrCat(store_->store_dir(), "/artifacts/by-archive/",
                              archive_.Hex())
                     .c_str(),
                 &sb) == 0;
  }
  std::string BlobBytes() const {
    return *ReadSmallFile(store_->blobs().BlobPath(archive_));
  }
  void ReplaceBlob(const std::string& bytes) const {
    std::string path = store_->blobs().BlobPath(archive_);
    ASSERT_EQ(chmod(path.c_str(), 0644), 0);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  // Unstash must fail with DataLoss, leave nothing, and quarantine the blob.
  void ExpectRefused(const std::string& what) {
    std::string out = absl::StrCat(tmp_, "/out-", RandomSuffix());
    absl::Status st = store_->Unstash(tree_, out);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << what << ": " << st;
    struct stat sb;
    EXPECT_NE(lstat(out.c_str(), &sb), 0) << what << ": output left behind";
    EXPECT_FALSE(store_->blobs().Has(archive_)) << what << ": not quarantined";
  }

  std::string tmp_;
  std::unique_ptr<ArtifactStore> store_;
  Digest tree_;
  Digest archive_;
};

TEST_P(UnstashIntegrityTest, SoundBlobUnstashesAndRecordMatchesTheMode) {
  EXPECT_EQ(HasRecord(), !GetParam());
  ASSERT_TRUE(store_->Unstash(tree_, tmp_ + "/out").ok());
  EXPECT_TRUE(HasRecord());  // verified now, either way
  EXPECT_EQ(*ReadSmallFile(tmp_ + "/out/sub/c"), "small");
  // Twice: the second unstash goes through the recorded (unhashed) path.
  ASSERT_TRUE(store_->Unstash(tree_, tmp_ + "/out2").ok());
  EXPECT_EQ(*ReadSmallFile(tmp_ + "/out2/sub/c"), "small");
}

TEST_P(UnstashIntegrityTest, FlippedByteAnywhereIsRefused) {
  const std::string good = BlobBytes();
  // Header, early, middle, late and the very last byte of the frame.
  for (double where : {0.001, 0.1, 0.33, 0.5, 0.77, 0.95, 1.0}) {
    size_t at =
        std::min(good.size() - 1, static_cast<size_t>(where * good.size()));
    std::string bad = good;
    bad[at] ^= 0x5a;
    ReplaceBlob(bad);
    ExpectRefused(absl::StrCat("byte ", at, " of ", good.size(), " flipped"));
    // Put the sound blob back for the next position.
    ASSERT_TRUE(store_->blobs().Put(good).ok());
  }
}

TEST_P(UnstashIntegrityTest, TrailingBytesOrTruncationAreRefused) {
  const std::string good = BlobBytes();
  ReplaceBlob(good + "trailing garbage");
  ExpectRefused("bytes appended");
  ASSERT_TRUE(store_->blobs().Put(good).ok());
  ReplaceBlob(good.substr(0, good.size() - 1));
  ExpectRefused("last byte cut");
  ASSERT_TRUE(store_->blobs().Put(good).ok());
  ReplaceBlob(good.substr(0, good.size() / 2));
  ExpectRefused("half cut");
}

// The blob swapped for a sound archive of a tampered tree (one byte of one
// file changed; or a file added): it extracts fine, to another tree.
TEST_P(UnstashIntegrityTest, ArchiveOfATamperedTreeIsRefused) {
  const std::string good = BlobBytes();
  auto scratch = ArtifactStore::Open(tmp_ + "/scratch-store");
  ASSERT_TRUE(scratch.ok());
  Write(tmp_ + "/t/sub/c", "smalL");
  auto changed = (*scratch)->Stash(tmp_ + "/t");
  ASSERT_TRUE(changed.ok());
  ReplaceBlob(*(*scratch)->blobs().Get(changed->archive));
  ExpectRefused("archive of a tree with one byte changed");

  ASSERT_TRUE(store_->blobs().Put(good).ok());
  Write(tmp_ + "/t/sub/c", "small");
  Write(tmp_ + "/t/extra", "x");
  auto added = (*scratch)->Stash(tmp_ + "/t");
  ASSERT_TRUE(added.ok());
  ReplaceBlob(*(*scratch)->blobs().Get(added->archive));
  ExpectRefused("archive of a tree with a file added");
}

INSTANTIATE_TEST_SUITE_P(RecordedOrClaimed, UnstashIntegrityTest,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Claimed" : "Recorded";
                         });

}  // namespace
}  // namespace kiln::cas
