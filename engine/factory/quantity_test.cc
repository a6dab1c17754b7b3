#include "engine/factory/quantity.h"

#include "gtest/gtest.h"

namespace kiln::factory {
namespace {

TEST(QuantityTest, AcceptsTheApiServersForms) {
  for (const char* q : {"1", "500m", "1.5", "2Gi", "512Mi", "1G", "1e3", "1E-3",
                        "+3", "-1", "0", ".5", "100n", "10u", "1Ei"}) {
    EXPECT_TRUE(ParseQuantity(q).has_value()) << q;
  }
}

TEST(QuantityTest, RefusesWhatIsNotAQuantity) {
  for (const char* q : {"", "abc", "1.2.3", "10 Mi", "1mi", "1KB", "Gi", "1Gib",
                        "--1", "1e", "1e99999", "."}) {
    EXPECT_FALSE(ParseQuantity(q).has_value()) << q;
  }
}

TEST(QuantityTest, ComparesByValue) {
  EXPECT_TRUE(SameQuantity("1000m", "1"));
  EXPECT_TRUE(SameQuantity("1Gi", "1024Mi"));
  EXPECT_TRUE(SameQuantity("1.5", "1500m"));
  EXPECT_TRUE(SameQuantity("1e3", "1k"));
  EXPECT_FALSE(SameQuantity("1G", "1Gi"));
  EXPECT_FALSE(SameQuantity("1", "2"));
  EXPECT_FALSE(SameQuantity("x", "x"));
}

}  // namespace
}  // namespace kiln::factory
