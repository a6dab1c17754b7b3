#include "engine/cas/stat_cache.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

class StatCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = absl::StrCat(getenv("TEST_TMPDIR"), "/sc-", RandomSuffix());
    ASSERT_TRUE(MakeDirs(store_).ok());
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(store_).ok()); }

  FileStat Stat(int64_t size, int64_t t) {
    FileStat s;
    s.size = size;
    s.mtime_ns = t;
    s.ctime_ns = t;
    s.inode = 7;
    s.device = 1;
    s.mode = 0100644;
    return s;
  }
  std::string store_;
};

TEST_F(StatCacheTest, HitAfterSaveAndReload) {
  Digest d = Digest::Of("content");
  {
    auto cache = StatCache::Load(store_, "/src/a");
    EXPECT_FALSE(cache->Lookup("f", Stat(7, 100)).has_value());
    cache->Record("f", Stat(7, 100), d, /*stat_clock_ns=*/200);
    ASSERT_TRUE(cache->Save().ok());
  }
  auto cache = StatCache::Load(store_, "/src/a");
  auto hit = cache->Lookup("f", Stat(7, 100));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit, d);
  EXPECT_EQ(hit->size(), 7);
  // Any stat difference is a miss.
  EXPECT_FALSE(cache->Lookup("f", Stat(8, 100)).has_value());
  EXPECT_FALSE(cache->Lookup("f", Stat(7, 101)).has_value());
  FileStat other_inode = Stat(7, 100);
  other_inode.inode = 8;
  EXPECT_FALSE(cache->Lookup("f", other_inode).has_value());
  FileStat chmodded = Stat(7, 100);
  chmodded.mode = 0100755;
  EXPECT_FALSE(cache->Lookup("f", chmodded).has_value());
  // Another root has its own cache.
  EXPECT_FALSE(StatCache::Load(store_, "/src/b")->Lookup("f", Stat(7, 100)));
}

TEST_F(StatCacheTest, RacyEntriesAreNotTrusted) {
  auto cache = StatCache::Load(store_, "/r");
  // Modified in the same clock tick as the stat: may change unseen.
  cache->Record("f", Stat(1, 500), Digest::Of("x"), /*stat_clock_ns=*/500);
  EXPECT_FALSE(cache->Lookup("f", Stat(1, 500)).has_value());
  cache->Record("g", Stat(1, 499), Digest::Of("x"), 500);
  EXPECT_TRUE(cache->Lookup("g", Stat(1, 499)).has_value());
}

TEST_F(StatCacheTest, DamagedFileIsIgnored) {
  {
    auto cache = StatCache::Load(store_, "/r");
    cache->Record("f", Stat(1, 1), Digest::Of("x"), 10);
    ASSERT_TRUE(cache->Save().ok());
  }
  std::string path =
      absl::StrCat(store_, "/statcache/", Digest::Of("/r").Hex());
  std::string data = *ReadSmallFile(path);
  data[data.size() / 2] ^= 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  auto cache = StatCache::Load(store_, "/r");
  EXPECT_EQ(cache->size(), 0u);
  EXPECT_FALSE(cache->Lookup("f", Stat(1, 1)).has_value());
}

TEST_F(StatCacheTest, UnusedEntriesAreDroppedAndCleanSaveWritesNothing) {
  {
    auto cache = StatCache::Load(store_, "/r");
    cache->Record("keep", Stat(1, 1), Digest::Of("k"), 10);
    cache->Record("gone", Stat(1, 1), Digest::Of("g"), 10);
    ASSERT_TRUE(cache->Save().ok());
  }
  {
    auto cache = StatCache::Load(store_, "/r");
    EXPECT_TRUE(cache->Lookup("keep", Stat(1, 1)).has_value());
    ASSERT_TRUE(cache->Save().ok());
  }
  std::string path =
      absl::StrCat(store_, "/statcache/", Digest::Of("/r").Hex());
  struct stat before;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  {
    auto cache = StatCache::Load(store_, "/r");
    EXPECT_EQ(cache->size(), 1u);
    EXPECT_TRUE(cache->Lookup("keep", Stat(1, 1)).has_value());
    ASSERT_TRUE(cache->Save().ok());  // nothing changed: no write
  }
  struct stat after;
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
}

}  // namespace
}  // namespace kiln::cas
