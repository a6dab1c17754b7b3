#include "engine/pipeline/suggest.h"

#include <string>

#include "base/testing/growth.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

TEST(SuggestTest, EditDistance) {
  EXPECT_EQ(EditDistance("", ""), 0);
  EXPECT_EQ(EditDistance("abc", ""), 3);
  EXPECT_EQ(EditDistance("needs", "neds"), 1);
  EXPECT_EQ(EditDistance("build", "biuld"), 1);  // transposition
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
}

TEST(SuggestTest, ClosestMatch) {
  std::vector<std::string> fields = {"name", "needs", "when", "run", "inputs"};
  EXPECT_EQ(ClosestMatch("neds", fields), "needs");
  EXPECT_EQ(ClosestMatch("nmae", fields), "name");
  EXPECT_EQ(ClosestMatch("zzzzzz", fields), "");
  EXPECT_EQ(ClosestMatch("x", fields), "");  // never the whole word
  EXPECT_EQ(DidYouMean("wehn", fields), " (did you mean 'when'?)");
  EXPECT_EQ(DidYouMean("banana", fields), "");
  EXPECT_EQ(ClosestMatch("a", {}), "");
}

TEST(SuggestTest, LongInputsAreBounded) {
  std::string long_word(100000, 'a');
  EXPECT_EQ(EditDistance(long_word, long_word), 0);
  EXPECT_EQ(ClosestMatch(long_word, {"a"}), "");
  // Doubling the words at most doubles the time: no quadratic table.
  double ratio = growth::DoublingRatio(
      [](int n) {
        std::string a(n, 'a'), b(n, 'b');
        EditDistance(a, b);
        ClosestMatch(a, {b});
      },
      100000);
  EXPECT_LE(ratio, growth::kLinearDoublingBound);
}

}  // namespace
}  // namespace kiln::pipeline
