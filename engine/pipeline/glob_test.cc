#include "engine/pipeline/glob.h"

#include "base/testing/growth.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

struct GlobCase {
  const char* pattern;
  const char* text;
  bool matches;
};

class GlobTest : public ::testing::TestWithParam<GlobCase> {};

TEST_P(GlobTest, Matches) {
  const GlobCase& c = GetParam();
  EXPECT_EQ(GlobMatch(c.pattern, c.text), c.matches)
      << "'" << c.pattern << "' vs '" << c.text << "'";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GlobTest,
    ::testing::Values(
        GlobCase{"main", "main", true}, GlobCase{"main", "mainline", false},
        GlobCase{"main", "", false}, GlobCase{"", "", true},
        GlobCase{"*", "", true}, GlobCase{"*", "feature", true},
        GlobCase{"*", "feature/x", false},
        GlobCase{"feature/*", "feature/x", true},
        GlobCase{"feature/*", "feature/x/y", false},
        GlobCase{"feature/**", "feature/x/y", true},
        GlobCase{"**", "a/b/c", true},
        GlobCase{"release/v?", "release/v1", true},
        GlobCase{"release/v?", "release/v10", false},
        GlobCase{"a?c", "a/c", false}, GlobCase{"v[0-9].*", "v1.x", true},
        GlobCase{"v[0-9].*", "vx.x", false}, GlobCase{"v[!0-9]", "vx", true},
        GlobCase{"v[^0-9]", "v5", false}, GlobCase{"[]]", "]", true},
        GlobCase{"a[/]b", "a/b", false}, GlobCase{"\\*", "*", true},
        GlobCase{"\\*", "x", false}, GlobCase{"*-fix", "bug-fix", true},
        GlobCase{"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 false},
        GlobCase{"feat[", "feat[", false}));

TEST(GlobTest, CheckGlob) {
  EXPECT_EQ(CheckGlob("feature/**"), "");
  EXPECT_EQ(CheckGlob("[a-z]"), "");
  EXPECT_NE(CheckGlob("feat["), "");
  EXPECT_NE(CheckGlob("x\\"), "");
  EXPECT_NE(CheckGlob("[z-a]"), "");
}

TEST(GlobTest, LongInputsAreLinear) {
  std::string pattern;
  for (int i = 0; i < 200; ++i) pattern += "*a";
  std::string text(20000, 'a');
  EXPECT_FALSE(GlobMatch(pattern + "b", text));
  EXPECT_TRUE(GlobMatch(pattern, text));
  // Doubling the text at most doubles the time (backtracking would not).
  double ratio = growth::DoublingRatio(
      [&](int n) {
        std::string t(n, 'a');
        EXPECT_FALSE(GlobMatch(pattern + "b", t));
      },
      3000);
  EXPECT_LE(ratio, growth::kLinearDoublingBound);
}

}  // namespace
}  // namespace kiln::pipeline
