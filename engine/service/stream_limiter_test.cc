#include "engine/service/stream_limiter.h"

#include <vector>

#include "gtest/gtest.h"

namespace kiln::service {
namespace {

TEST(StreamLimiterTest, LimitsPerClientAndReleases) {
  StreamLimiter limiter(2);
  std::vector<StreamLimiter::Slot> held;
  held.push_back(*limiter.Acquire("a"));
  held.push_back(*limiter.Acquire("a"));
  absl::StatusOr<StreamLimiter::Slot> third = limiter.Acquire("a");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  // Another client is unaffected.
  EXPECT_TRUE(limiter.Acquire("b").ok());
  EXPECT_EQ(limiter.Active("b"), 0);
  held.pop_back();
  EXPECT_EQ(limiter.Active("a"), 1);
  EXPECT_TRUE(limiter.Acquire("a").ok());
  held.clear();
  EXPECT_EQ(limiter.Active("a"), 0);
}

}  // namespace
}  // namespace kiln::service
