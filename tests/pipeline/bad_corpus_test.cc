// Runs the loader on every file of tests/pipeline/bad and checks the first
// diagnostic's position and message against NAME.expect; also the example
// pipeline (valid) and inputs generated here (oversize file, huge scalar).
#include <dirent.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

std::string Runfile(const std::string& path) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/kiln/", path);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> CorpusNames() {
  std::vector<std::string> names;
  DIR* dir = opendir(Runfile("tests/pipeline/bad").c_str());
  if (dir == nullptr) return names;
  while (dirent* e = readdir(dir)) {
    absl::string_view name = e->d_name;
    if (absl::ConsumeSuffix(&name, ".yaml")) names.emplace_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

// Checks `file`'s first diagnostic against "LINE:COL: substring" or "ok".
void ExpectFirst(const std::string& file, const std::string& expect) {
  auto start = std::chrono::steady_clock::now();
  LoadedPipeline loaded = LoadPipelineFile(file);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_LT(seconds, 5.0) << file;
  if (expect == "ok") {
    EXPECT_TRUE(loaded.ok()) << JoinDiagnostics(loaded.errors);
    return;
  }
  ASSERT_FALSE(loaded.ok()) << file << " loaded cleanly";
  std::string first = loaded.errors.front().ToString();
  // "LINE:COL: substring": the position exactly, the message by substring.
  size_t colon = expect.find(": ");
  ASSERT_NE(colon, std::string::npos) << "bad expectation " << expect;
  std::string position = absl::StrCat(file, ":", expect.substr(0, colon), ": ");
  EXPECT_TRUE(absl::StartsWith(first, position))
      << first << "\nwant at " << position;
  EXPECT_THAT(first, HasSubstr(expect.substr(colon + 2))) << first;
}

TEST(BadCorpusTest, EveryFileHasItsExpectedFirstDiagnostic) {
  std::vector<std::string> names = CorpusNames();
  ASSERT_GE(names.size(), 17u)
      << "corpus not found under " << Runfile("tests/pipeline/bad");
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    std::string base = Runfile(absl::StrCat("tests/pipeline/bad/", name));
    std::string expect(absl::StripAsciiWhitespace(ReadAll(base + ".expect")));
    ASSERT_FALSE(expect.empty()) << "missing " << name << ".expect";
    ExpectFirst(base + ".yaml", expect);
  }
}

TEST(BadCorpusTest, ExampleIsValid) {
  LoadedPipeline loaded =
      LoadPipelineFile(Runfile("examples/hello/pipeline.yaml"));
  EXPECT_TRUE(loaded.ok()) << JoinDiagnostics(loaded.errors);
  EXPECT_EQ(loaded.pipeline.tasks_size() + loaded.pipeline.finally_size(), 10);
}

TEST(BadCorpusTest, GeneratedOversizeFileAndHugeScalar) {
  std::string dir = getenv("TEST_TMPDIR");
  std::string oversize = dir + "/oversize.yaml";
  {
    std::ofstream out(oversize);
    out << "name: big\ntasks:\n";
    while (out.tellp() < (1 << 20) + 10)
      out << "  - {name: t, run: {command: [x]}}\n";
  }
  ExpectFirst(oversize, "1:1: file of ");

  std::string huge = dir + "/huge_scalar.yaml";
  {
    std::ofstream out(huge);
    out << "name: h\ntasks:\n  - name: a\n    run: {command: [\""
        << std::string(100000, 'x') << "\"]}\n";
  }
  ExpectFirst(huge, "4:21: scalar of 100000 bytes exceeds the limit");
}

}  // namespace
}  // namespace kiln::pipeline
