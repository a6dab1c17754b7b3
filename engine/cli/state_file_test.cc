#include "engine/cli/state_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kiln::cli {
namespace {

std::string TempDir() {
  static int counter = 0;
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/state", counter++);
}

TEST(StateFileTest, CreatedOnceOwnerOnlyThenReadBack) {
  const std::string store = TempDir();
  ASSERT_EQ(mkdir(store.c_str(), 0700), 0);
  const std::string path = store + "/kubernetes/agent-token";
  int made = 0;
  auto make = [&]() -> absl::StatusOr<std::string> {
    ++made;
    return absl::StrCat("token-", made);
  };
  auto first = ReadOrCreateStateFile(path, make);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "token-1");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = ReadOrCreateStateFile(path, make);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "token-1");
  EXPECT_EQ(made, 1);
  // No temp file is left beside it.
  std::string dir = path.substr(0, path.rfind('/'));
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    entries.push_back(e.path().filename().string());
  }
  EXPECT_EQ(entries, std::vector<std::string>{"agent-token"});
}

TEST(StateFileTest, ConcurrentCreatorsAgreeOnOneValue) {
  const std::string path = TempDir() + "/instance";
  std::atomic<int> counter{0};
  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto v =
          ReadOrCreateStateFile(path, [&]() -> absl::StatusOr<std::string> {
            return absl::StrCat("value-", counter++);
          });
      got[i] = v.ok() ? *v : std::string(v.status().message());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), 1u) << got[0];
  EXPECT_EQ(got[0].rfind("value-", 0), 0u) << got[0];
}

TEST(StateFileTest, ASecretOthersCanReadIsRefused) {
  const std::string dir = TempDir();
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string path = dir + "/agent-token";
  { std::ofstream(path) << "readable-by-all\n"; }
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  auto v = ReadOrCreateStateFile(
      path, []() -> absl::StatusOr<std::string> { return "new"; });
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(v.status().message().find("0600"), std::string::npos);
  // A symlink in its place is not followed.
  const std::string link_path = dir + "/link";
  ASSERT_EQ(symlink(path.c_str(), link_path.c_str()), 0);
  EXPECT_FALSE(ReadOrCreateStateFile(link_path, [] {
                 return absl::StatusOr<std::string>("x");
               }).ok());
  // An empty one is refused, not silently replaced.
  const std::string empty = dir + "/empty";
  { std::ofstream(empty) << "\n"; }
  ASSERT_EQ(chmod(empty.c_str(), 0600), 0);
  EXPECT_FALSE(ReadOrCreateStateFile(empty, [] {
                 return absl::StatusOr<std::string>("x");
               }).ok());
}

TEST(StateFileTest, AFailureToMakeTheValueCreatesNothing) {
  const std::string path = TempDir() + "/token";
  auto v = ReadOrCreateStateFile(path, []() -> absl::StatusOr<std::string> {
    return absl::InternalError("no entropy");
  });
  EXPECT_FALSE(v.ok());
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace kiln::cli
