#include "engine/archive/hash_worker.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kiln::archive {
namespace {

std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 31 + seed) % 251);
  return s;
}

// Feeds `files` in pieces of `piece` bytes; digests must match one-shot
// hashes, in order, whatever the batch boundaries.
void Check(const std::vector<std::string>& files, size_t piece, size_t batch,
           size_t pending) {
  HashWorker w(batch, pending);
  for (const std::string& f : files) {
    w.Begin();
    for (size_t off = 0; off < f.size(); off += piece) {
      w.Update(absl::string_view(f).substr(off, piece));
    }
    w.End();
  }
  std::vector<cas::Digest> got = w.Finish();
  ASSERT_EQ(got.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(got[i], cas::Digest::Of(files[i])) << "file " << i;
    EXPECT_EQ(got[i].size(), static_cast<int64_t>(files[i].size()));
  }
}

TEST(HashWorkerTest, DigestsMatchAcrossBatchBoundaries) {
  std::vector<std::string> files = {
      "", Bytes(1, 1),      Bytes(4095, 2), Bytes(4096, 3), Bytes(4097, 4),
      "", Bytes(100000, 5), Bytes(3, 6)};
  for (size_t piece : {1, 7, 4096, 65536}) {
    Check(files, piece, 4096, 8192);  // tiny batches: constant hand-offs
    Check(files, piece, 1 << 20, 16 << 20);
  }
}

TEST(HashWorkerTest, ManySmallFilesShareBatches) {
  std::vector<std::string> files;
  for (int i = 0; i < 20000; ++i) files.push_back(Bytes(i % 37, i));
  Check(files, 1 << 20, 1 << 20, 4 << 20);
}

TEST(HashWorkerTest, FinishEndsAnOpenFileAndNoFilesIsEmpty) {
  {
    HashWorker w;
    EXPECT_TRUE(w.Finish().empty());
  }
  HashWorker w;
  w.Begin();
  w.Update("abc");
  std::vector<cas::Digest> got = w.Finish();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], cas::Digest::Of("abc"));
}

TEST(HashWorkerTest, DestroyedUnfinishedWhileBackedUpDoesNotHang) {
  HashWorker w(4096, 4096);
  w.Begin();
  w.Update(Bytes(1 << 20, 9));  // far more than may be pending
  // No Finish(): the destructor stops and joins the worker.
}

}  // namespace
}  // namespace kiln::archive
