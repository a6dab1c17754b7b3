#include "engine/store/key_file.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;

std::string Dir(const std::string& name) {
  std::string d = absl::StrCat(std::getenv("TEST_TMPDIR"), "/key_", name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

int DamagedCopies(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".damaged-") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

TEST(KeyFileTest, CreatesOwnerOnlyKeyOnceAndRereadsIt) {
  std::string dir = Dir("create");
  auto a = LoadOrCreateKey(dir + "/k", "x");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->size(), kKeyBytes);
  struct stat st;
  ASSERT_EQ(stat((dir + "/k").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = LoadOrCreateKey(dir + "/k", "x");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
}

// Used to recurse forever (a segfault on every run) after link()'s EEXIST.
TEST(KeyFileTest, EmptyOrWrongSizeKeyIsMovedAsideAndReplaced) {
  for (const std::string& bad :
       {std::string(), std::string(7, 'x'), std::string(33, 'y')}) {
    SCOPED_TRACE(bad.size());
    std::string dir = Dir(absl::StrCat("damaged", bad.size()));
    Write(dir + "/secret.key", bad);
    auto key = LoadOrCreateKey(dir + "/secret.key", "cache entries miss once");
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(key->size(), kKeyBytes);
    EXPECT_EQ(DamagedCopies(dir), 1);  // kept for inspection
    auto again = LoadOrCreateKey(dir + "/secret.key", "x");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *key);
    EXPECT_EQ(DamagedCopies(dir), 1);
  }
}

TEST(KeyFileTest, ConcurrentRepairsAgreeOnOneKey) {
  std::string dir = Dir("race");
  Write(dir + "/k", "short");
  std::vector<std::string> keys(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < keys.size(); ++i) {
    threads.emplace_back([&, i] {
      auto k = LoadOrCreateKey(dir + "/k", "x");
      if (k.ok()) keys[i] = *k;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& k : keys) EXPECT_EQ(k, keys[0]);
  EXPECT_EQ(keys[0].size(), kKeyBytes);
  EXPECT_EQ(DamagedCopies(dir), 1);
}

TEST(KeyFileTest, DirectoryInPlaceOfKeyIsAClearError) {
  std::string dir = Dir("isdir");
  fs::create_directories(dir + "/k");
  auto key = LoadOrCreateKey(dir + "/k", "x");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find(dir + "/k"), std::string::npos)
      << key.status();
}

TEST(KeyFileTest, SealOpensOnlyWithSameKeyAndAad) {
  std::string key(kKeyBytes, 'k'), other(kKeyBytes, 'o');
  auto sealed = SealValue(key, "hunter2", "run1/token");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("hunter2"), std::string::npos);
  auto opened = OpenSealedValue(key, *sealed, "run1/token");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "hunter2");
  EXPECT_TRUE(
      absl::IsDataLoss(OpenSealedValue(other, *sealed, "run1/token").status()));
  EXPECT_TRUE(
      absl::IsDataLoss(OpenSealedValue(key, *sealed, "run2/token").status()));
  std::string flipped = *sealed;
  flipped[14] ^= 1;
  EXPECT_TRUE(
      absl::IsDataLoss(OpenSealedValue(key, flipped, "run1/token").status()));
  auto empty = SealValue(key, "", "a");
  ASSERT_TRUE(empty.ok());
  auto empty_opened = OpenSealedValue(key, *empty, "a");
  ASSERT_TRUE(empty_opened.ok());
  EXPECT_EQ(*empty_opened, "");
}

}  // namespace
}  // namespace kiln::store
