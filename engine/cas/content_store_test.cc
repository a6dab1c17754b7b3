#include "engine/cas/content_store.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(getenv("TEST_TMPDIR"), "/store-", RandomSuffix());
    auto store = ContentStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(dir_).ok()); }

  // Overwrites the blob file in place (it is read-only on disk).
  void Corrupt(const Digest& d, const std::string& contents) {
    std::string path = store_->BlobPath(d);
    chmod(path.c_str(), 0644);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  }

  std::string dir_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(ContentStoreTest, PutGetHas) {
  auto d = store_->Put("hello");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Digest::Of("hello"));
  EXPECT_EQ(d->size(), 5);
  EXPECT_TRUE(store_->Has(*d));
  auto got = store_->Get(*d);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "hello");
  EXPECT_TRUE(store_->Verify(*d).ok());
  // A wrong known size counts as absent.
  Digest wrong_size = *d;
  wrong_size.set_size(6);
  EXPECT_FALSE(store_->Has(wrong_size));
  // Blobs are read-only on disk.
  struct stat st;
  ASSERT_EQ(stat(store_->BlobPath(*d).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
}

TEST_F(ContentStoreTest, MissingBlob) {
  Digest absent = Digest::Of("absent");
  EXPECT_FALSE(store_->Has(absent));
  EXPECT_EQ(store_->Get(absent).status().code(), absl::StatusCode::kNotFound);
  auto present = store_->Put("present");
  ASSERT_TRUE(present.ok());
  std::vector<Digest> missing = store_->FindMissing({absent, *present});
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], absent);
}

TEST_F(ContentStoreTest, EmptyAndLargeBlobs) {
  auto empty = store_->Put("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*store_->Get(*empty), "");
  std::string big(5 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4097) big[i] = static_cast<char>(i);
  std::string file = dir_ + "/big.bin";
  std::ofstream(file, std::ios::binary) << big;
  auto d = store_->PutFile(file);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Digest::Of(big));
  EXPECT_EQ(*store_->Get(*d), big);
}

TEST_F(ContentStoreTest, WriterChecksExpectedDigest) {
  Digest expected = Digest::Of("abc");
  auto w = store_->NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("ab").ok());
  ASSERT_TRUE((*w)->Append("X").ok());
  auto bad = (*w)->Commit(&expected);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->Has(expected));

  auto w2 = store_->NewWriter();
  ASSERT_TRUE(w2.ok());
  ASSERT_TRUE((*w2)->Append("a").ok());
  ASSERT_TRUE((*w2)->Append("bc").ok());
  auto good = (*w2)->Commit(&expected);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(store_->Has(expected));
  // No temp files are left behind either way.
  auto listing = store_->ListBlobs();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->size(), 1u);
}

TEST_F(ContentStoreTest, AbandonedWriterLeavesNothing) {
  {
    auto w = store_->NewWriter();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("never committed").ok());
  }
  EXPECT_FALSE(store_->Has(Digest::Of("never committed")));
  auto blobs = store_->ListBlobs();
  ASSERT_TRUE(blobs.ok());
  EXPECT_TRUE(blobs->empty());
}

std::vector<std::string> TempFiles(const std::string& store_dir) {
  std::vector<std::string> names;
  DIR* d = opendir((store_dir + "/cas/tmp").c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

// A writer killed mid-upload leaves a partial blob; the next open of the
// store (a server start) removes it at once, but never a live writer's.
TEST_F(ContentStoreTest, DeadWritersTempsSweptAtOpenLiveOnesKept) {
  int ready[2], hold[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(hold), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    close(hold[1]);
    auto w = store_->NewWriter();
    bool ok = w.ok() && (*w)->Append(std::string(1 << 20, 'p')).ok();
    char c = ok ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    while (read(hold[0], &c, 1) < 0 && errno == EINTR) {
    }  // until killed
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(c, 'y');
  std::vector<std::string> temps = TempFiles(dir_);
  ASSERT_EQ(temps.size(), 1u);
  EXPECT_NE(temps[0].find(absl::StrCat("-", child, "-")), std::string::npos)
      << temps[0];
  // The writer is alive: reopening (another process starting) keeps it.
  ASSERT_TRUE(ContentStore::Open(dir_).ok());
  EXPECT_EQ(TempFiles(dir_), temps);
  // kill -9: nothing of the writer runs; the next open sweeps its temp.
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(hold[1]);
  EXPECT_EQ(TempFiles(dir_), temps);
  ASSERT_TRUE(ContentStore::Open(dir_).ok());
  EXPECT_TRUE(TempFiles(dir_).empty());
}

TEST_F(ContentStoreTest, BitFlipIsDetectedQuarantinedAndNeverServed) {
  std::string content(100000, 'a');
  auto d = store_->Put(content);
  ASSERT_TRUE(d.ok());
  std::string flipped = content;
  flipped[5000] ^= 0x01;
  Corrupt(*d, flipped);
  auto got = store_->Get(*d);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(store_->Has(*d));  // quarantined
  EXPECT_EQ(store_->Get(*d).status().code(), absl::StatusCode::kNotFound);
  // A producer can store it again.
  ASSERT_TRUE(store_->Put(content).ok());
  EXPECT_EQ(*store_->Get(*d), content);
}

TEST_F(ContentStoreTest, TruncationIsDetectedByStreamingRead) {
  std::string content(300000, 'b');
  auto d = store_->Put(content);
  ASSERT_TRUE(d.ok());
  Corrupt(*d, content.substr(0, 1000));
  auto reader = store_->OpenBlob(*d);
  ASSERT_TRUE(reader.ok());
  char buf[4096];
  absl::Status final_status;
  while (true) {
    auto n = (*reader)->Read(buf, sizeof(buf));
    if (!n.ok()) {
      final_status = n.status();
      break;
    }
    ASSERT_GT(*n, 0u) << "a truncated blob reached a clean end";
  }
  EXPECT_EQ(final_status.code(), absl::StatusCode::kDataLoss);
  // The verdict sticks: a later read does not turn into a clean end.
  EXPECT_EQ((*reader)->Read(buf, sizeof(buf)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(store_->Has(*d));
}

TEST_F(ContentStoreTest, VerifyReportsCorruption) {
  auto d = store_->Put("verify me");
  ASSERT_TRUE(d.ok());
  Corrupt(*d, "verify mE");
  EXPECT_EQ(store_->Verify(*d).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->Verify(*d).code(), absl::StatusCode::kNotFound);
}

TEST_F(ContentStoreTest, ConcurrentWritersOfOneDigestFromThreads) {
  std::string content(1 << 20, 'z');
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        auto d = store_->Put(content);
        if (!d.ok()) {
          results[t] = d.status();
          return;
        }
        auto got = store_->Get(*d);
        if (!got.ok() || *got != content) {
          results[t] = absl::InternalError("read back differs");
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r;
  auto blobs = store_->ListBlobs();
  ASSERT_TRUE(blobs.ok());
  ASSERT_EQ(blobs->size(), 1u);
  EXPECT_EQ((*blobs)[0].size(), 1 << 20);
}

TEST_F(ContentStoreTest, ConcurrentWritersOfOneDigestFromProcesses) {
  std::string content(2 << 20, 'p');
  std::vector<pid_t> children;
  for (int c = 0; c < 4; ++c) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Each process opens the store on its own, like separate kiln runs.
      auto store = ContentStore::Open(dir_);
      if (!store.ok()) _exit(3);
      for (int i = 0; i < 10; ++i) {
        auto d = (*store)->Put(content);
        if (!d.ok()) _exit(4);
        auto got = (*store)->Get(*d);
        if (!got.ok() || *got != content) _exit(5);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child status " << status;
  }
  EXPECT_EQ(*store_->Get(Digest::Of(content)), content);
  EXPECT_EQ(*store_->TotalSize(), 2 << 20);
}

TEST_F(ContentStoreTest, WriterKilledMidWriteLeavesNoBlob) {
  std::string content(8 << 20, 'k');
  Digest d = Digest::Of(content);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(ready[0]);
    auto store = ContentStore::Open(dir_);
    if (!store.ok()) _exit(3);
    auto w = (*store)->NewWriter();
    if (!w.ok()) _exit(4);
    // Write half, tell the parent, then wait to be killed.
    if (!(*w)->Append(absl::string_view(content).substr(0, 4 << 20)).ok()) {
      _exit(5);
    }
    char c = 'x';
    if (write(ready[1], &c, 1) != 1) _exit(6);
    while (true) pause();
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));

  // The half-written temp file is invisible under the digest's name.
  auto reopened = ContentStore::Open(dir_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE((*reopened)->Has(d));
  EXPECT_EQ((*reopened)->Get(d).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*reopened)->ListBlobs()->empty());
  // And the content can still be stored whole.
  ASSERT_TRUE((*reopened)->Put(content).ok());
  EXPECT_TRUE((*reopened)->Verify(d).ok());
}

TEST_F(ContentStoreTest, ListBlobsAndTotalSize) {
  ASSERT_TRUE(store_->Put("one").ok());
  ASSERT_TRUE(store_->Put("three").ok());
  ASSERT_TRUE(store_->Put("three").ok());
  auto blobs = store_->ListBlobs();
  ASSERT_TRUE(blobs.ok());
  EXPECT_EQ(blobs->size(), 2u);
  EXPECT_EQ(*store_->TotalSize(), 8);
  ASSERT_TRUE(store_->Remove(Digest::Of("one")).ok());
  EXPECT_EQ(*store_->TotalSize(), 5);
}

// The store's own small records (file_io.h): read whole in one read(2),
// refused when longer than asked, never through a symlink.
TEST_F(ContentStoreTest, StoreRecordsAreReadWholeAndBounded) {
  const std::string path = dir_ + "/record";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100, 'x')).ok());
  absl::StatusOr<std::string> exact = ReadStoreRecord(path, 100);
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(*exact, std::string(100, 'x'));
  EXPECT_EQ(ReadStoreRecord(path, 99).status().code(),
            absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(*ReadStoreRecord(path, 10), "");
  EXPECT_EQ(ReadStoreRecord(dir_ + "/none", 10).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_EQ(symlink(path.c_str(), (dir_ + "/link").c_str()), 0);
  EXPECT_FALSE(ReadStoreRecord(dir_ + "/link", 10).ok());
  EXPECT_EQ(ReadStoreRecord(path, 1024).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::cas
