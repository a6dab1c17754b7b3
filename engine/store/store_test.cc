#include "engine/store/store.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(base ? base : "/tmp", "/store_test_", name, "_", getpid());
  fs::remove_all(dir);
  return dir;
}

TEST(StoreTest, OpensEveryPartOnceUnderOneNormalizedDirectory) {
  std::string dir = TempDir("layout");
  auto store = Store::Open(dir + "/./nested/../s/");
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string root = (*store)->dir();
  EXPECT_EQ(root, fs::absolute(dir + "/s").lexically_normal().string());
  EXPECT_TRUE(fs::exists(root + "/runs.db"));
  EXPECT_TRUE(fs::exists(root + "/action_cache.db"));
  EXPECT_TRUE(fs::is_directory(root + "/cas"));
  // The artifact store writes to the one blob store.
  auto blob = (*store)->blobs().Put("hello");
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_TRUE((*store)->artifacts().blobs().Has(*blob));
  EXPECT_EQ(&(*store)->blobs(), &(*store)->artifacts().blobs());
  EXPECT_EQ((*store)->SourcesDir(), root + "/sources");
  EXPECT_EQ(
      (*store)->AttemptLogPath("r1", "build", 2).rfind(root + "/logs/", 0), 0u);
  auto key = (*store)->HmacKey();
  ASSERT_TRUE(key.ok()) << key.status();
  auto again = (*store)->HmacKey();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*key, *again);
  EXPECT_EQ(key->size(), 32u);
  fs::remove_all(dir);
}

TEST(StoreTest, EmptyDirectoryIsAnError) {
  auto store = Store::Open("");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::store
