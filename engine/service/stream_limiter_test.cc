#include "engine/service/stream_limiter.h"

#include <vector>

#include "gtest/gtest.h"

namespace kiln::service {
namespace {

StreamLimits Limits(int per_client, int total, int admin_reserve) {
  StreamLimits limits;
  limits.per_client = per_client;
  limits.total = total;
  limits.admin_reserve = admin_reserve;
  return limits;
}

TEST(StreamLimiterTest, LimitsPerClientAndReleases) {
  StreamLimiter limiter(Limits(2, 100, 0));
  std::vector<StreamLimiter::Slot> held;
  held.push_back(*limiter.Acquire("a", false));
  held.push_back(*limiter.Acquire("a", false));
  absl::StatusOr<StreamLimiter::Slot> third = limiter.Acquire("a", false);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  // Another client is unaffected.
  EXPECT_TRUE(limiter.Acquire("b", false).ok());
  EXPECT_EQ(limiter.Active("b"), 0);
  held.pop_back();
  EXPECT_EQ(limiter.Active("a"), 1);
  EXPECT_TRUE(limiter.Acquire("a", false).ok());
  held.clear();
  EXPECT_EQ(limiter.Active("a"), 0);
  EXPECT_EQ(limiter.Total(), 0);
}

TEST(StreamLimiterTest, BoundsAllClientsTogetherAndKeepsAnAdminReserve) {
  StreamLimiter limiter(Limits(10, 5, 2));
  std::vector<StreamLimiter::Slot> held;
  // Many clients, each under its own limit, share total - reserve = 3.
  held.push_back(*limiter.Acquire("a", false));
  held.push_back(*limiter.Acquire("b", false));
  held.push_back(*limiter.Acquire("c", false));
  absl::StatusOr<StreamLimiter::Slot> d = limiter.Acquire("d", false);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted);
  // An admin still gets the reserve, and no more.
  held.push_back(*limiter.Acquire("root", true));
  held.push_back(*limiter.Acquire("root", true));
  EXPECT_EQ(limiter.Acquire("root", true).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limiter.Total(), 5);
  held.clear();
  EXPECT_EQ(limiter.Total(), 0);
  EXPECT_TRUE(limiter.Acquire("d", false).ok());
}

}  // namespace
}  // namespace kiln::service
