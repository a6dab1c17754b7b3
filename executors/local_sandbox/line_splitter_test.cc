#include "executors/local_sandbox/line_splitter.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace sandbox {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

struct Collector {
  std::vector<std::string> lines;
  LineSplitter::LineCallback callback() {
    return [this](absl::string_view line) { lines.emplace_back(line); };
  }
};

TEST(LineSplitterTest, SplitsAtNewlinesAcrossFeeds) {
  Collector out;
  LineSplitter splitter(100, out.callback());
  splitter.Feed("one\ntw");
  splitter.Feed("o\n\nthr");
  EXPECT_THAT(out.lines, ElementsAre("one", "two", ""));
  splitter.Finish();
  EXPECT_THAT(out.lines, ElementsAre("one", "two", "", "thr"));
}

TEST(LineSplitterTest, FinishWithoutPartialDeliversNothing) {
  Collector out;
  LineSplitter splitter(100, out.callback());
  splitter.Feed("done\n");
  splitter.Finish();
  EXPECT_THAT(out.lines, ElementsAre("done"));
}

TEST(LineSplitterTest, SplitsLongLinesAtTheCap) {
  Collector out;
  LineSplitter splitter(4, out.callback());
  splitter.Feed("abcdefghij\n");
  EXPECT_THAT(out.lines, ElementsAre("abcd", "efgh", "ij"));
}

TEST(LineSplitterTest, LineOfExactlyTheCapIsOneLine) {
  Collector out;
  LineSplitter splitter(4, out.callback());
  splitter.Feed("ab");
  splitter.Feed("cd\nxy\n");
  EXPECT_THAT(out.lines, ElementsAre("abcd", "xy"));
}

TEST(LineSplitterTest, LongUnterminatedLineIsSplitWhileStreaming) {
  Collector out;
  LineSplitter splitter(3, out.callback());
  splitter.Feed("aaaa");
  EXPECT_THAT(out.lines, ElementsAre("aaa"));
  splitter.Feed("aa");
  EXPECT_THAT(out.lines, ElementsAre("aaa", "aaa"));
  splitter.Finish();
  EXPECT_THAT(out.lines, ElementsAre("aaa", "aaa"));
}

TEST(LineSplitterTest, EmptyInputDeliversNothing) {
  Collector out;
  LineSplitter splitter(3, out.callback());
  splitter.Feed("");
  splitter.Finish();
  EXPECT_THAT(out.lines, IsEmpty());
}

}  // namespace
}  // namespace sandbox
}  // namespace kiln
