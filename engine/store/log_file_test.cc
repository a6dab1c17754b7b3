#include "engine/store/log_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

using ::testing::HasSubstr;

std::string FreshDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir =
      absl::StrCat(tmp ? tmp : "/tmp", "/log_file_test/", info->name());
  std::filesystem::remove_all(dir);
  return dir;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

TEST(SafeFileNameTest, KeepsPlainNamesAndEscapesTheRest) {
  EXPECT_EQ(SafeFileName("build-app_2"), "build-app_2");
  EXPECT_EQ(SafeFileName("a/b"), "a%2Fb");
  EXPECT_EQ(SafeFileName(".."), "%2E%2E");
  EXPECT_EQ(SafeFileName("x.1"), "x%2E1");
  EXPECT_EQ(SafeFileName("%"), "%25");
  EXPECT_EQ(SafeFileName(""), "%");
  EXPECT_EQ(SafeFileName("\xff "), "%FF%20");
  // Injective over a few confusable names.
  std::set<std::string> names;
  for (const char* n : {"a/b", "a%2Fb", "a.b", "a%2Eb", "", "%"}) {
    names.insert(SafeFileName(n));
  }
  EXPECT_EQ(names.size(), 6u);
  EXPECT_EQ(AttemptLogRelativePath("r1", "deploy/prod", 2),
            "logs/r1/deploy%2Fprod.2.log");
}

TEST(AttemptLogFileTest, WritesTimestampedLines) {
  std::string dir = FreshDir();
  auto log = AttemptLogFile::Open(dir, "r1", "build", 1);
  ASSERT_TRUE(log.ok()) << log.status();
  absl::Time t = absl::FromUnixMicros(1700000000123456);
  ASSERT_TRUE((*log)->AppendLine(LogStream::kStdout, "hello world", t).ok());
  ASSERT_TRUE((*log)->AppendLine(LogStream::kStderr, "two\nlines", t).ok());
  ASSERT_TRUE((*log)->AppendLine(LogStream::kStdout, "", t).ok());
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ((*log)->relative_path(), "logs/r1/build.1.log");
  EXPECT_EQ((*log)->path(), dir + "/logs/r1/build.1.log");

  std::vector<std::string> lines = ReadLines((*log)->path());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "2023-11-14T22:13:20.123456Z out hello world");
  EXPECT_EQ(lines[1], "2023-11-14T22:13:20.123456Z err two");
  EXPECT_EQ(lines[2], "2023-11-14T22:13:20.123456Z err lines");
  int64_t size = 0;
  for (const auto& l : lines) size += l.size() + 1;
  EXPECT_EQ((*log)->bytes(), size);

  auto parsed = ParseLogFileLine(lines[1]);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->time, t);
  EXPECT_EQ(parsed->stream, LogStream::kStderr);
  EXPECT_EQ(parsed->text, "two");
  EXPECT_EQ(ParseLogFileLine(lines[3])->text, "");
  EXPECT_FALSE(ParseLogFileLine("garbage").ok());
  EXPECT_FALSE(ParseLogFileLine("2023-11-14T22:13:20.123456Z xyz a").ok());

  struct stat st;
  ASSERT_EQ(stat((*log)->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(AttemptLogFileTest, ReopenAppendsAndCountsExistingBytes) {
  std::string dir = FreshDir();
  int64_t first_size;
  {
    auto log = AttemptLogFile::Open(dir, "r1", "t", 1);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(
        (*log)->AppendLine(LogStream::kStdout, "one", absl::Now()).ok());
    ASSERT_TRUE((*log)->Close().ok());
    first_size = (*log)->bytes();
    EXPECT_EQ((*log)->AppendLine(LogStream::kStdout, "x", absl::Now()).code(),
              absl::StatusCode::kFailedPrecondition);
  }
  auto log = AttemptLogFile::Open(dir, "r1", "t", 1);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ((*log)->bytes(), first_size);
  ASSERT_TRUE((*log)->AppendLine(LogStream::kStdout, "two", absl::Now()).ok());
  ASSERT_TRUE((*log)->Close().ok());
  EXPECT_EQ(ReadLines((*log)->path()).size(), 2u);
}

TEST(AttemptLogFileTest, CapTruncatesWithOneNotice) {
  std::string dir = FreshDir();
  AttemptLogFile::Options options;
  options.max_bytes = 1000;
  auto log = AttemptLogFile::Open(dir, "r1", "noisy", 1, options);
  ASSERT_TRUE(log.ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE((*log)
                    ->AppendLine(LogStream::kStdout, absl::StrCat("line ", i),
                                 absl::Now())
                    .ok());
  }
  ASSERT_TRUE((*log)->Close().ok());
  EXPECT_LE((*log)->bytes(), 1000);
  EXPECT_GT((*log)->dropped_lines(), 50);
  std::vector<std::string> lines = ReadLines((*log)->path());
  EXPECT_EQ(static_cast<int64_t>(lines.size()) + (*log)->dropped_lines(),
            101);  // the notice replaces nothing: 100 lines + 1 notice
  EXPECT_THAT(lines.back(), HasSubstr("[kiln: log truncated at"));
  EXPECT_EQ(std::filesystem::file_size((*log)->path()),
            static_cast<uintmax_t>((*log)->bytes()));
}

TEST(AttemptLogFileTest, RefusesSymlinksAndBadArguments) {
  std::string dir = FreshDir();
  std::filesystem::create_directories(dir + "/logs/r1");
  std::string target = dir + "/elsewhere";
  ASSERT_EQ(symlink(target.c_str(), (dir + "/logs/r1/t.1.log").c_str()), 0);
  EXPECT_FALSE(AttemptLogFile::Open(dir, "r1", "t", 1).ok());
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_EQ(AttemptLogFile::Open(dir, "r1", "t", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AttemptLogFile::Open(dir, "", "t", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A hostile task name stays inside the run's directory.
  auto log = AttemptLogFile::Open(dir, "r1", "../../escape", 1);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ((*log)->relative_path(), "logs/r1/%2E%2E%2F%2E%2E%2Fescape.1.log");
}

TEST(AttemptLogFileTest, ConcurrentAppendsKeepLinesWhole) {
  std::string dir = FreshDir();
  auto log = AttemptLogFile::Open(dir, "r1", "t", 1);
  ASSERT_TRUE(log.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(
            (*log)
                ->AppendLine(t % 2 ? LogStream::kStderr : LogStream::kStdout,
                             absl::StrCat("thread ", t, " line ", i),
                             absl::Now())
                .ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE((*log)->Close().ok());
  std::vector<std::string> lines = ReadLines((*log)->path());
  ASSERT_EQ(lines.size(), 800u);
  for (const auto& line : lines) {
    auto parsed = ParseLogFileLine(line);
    ASSERT_TRUE(parsed.ok()) << line;
    EXPECT_THAT(parsed->text, HasSubstr(" line "));
  }
}

}  // namespace
}  // namespace kiln::store
