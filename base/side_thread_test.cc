#include "base/side_thread.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(SideThreadTest, EveryIndexOnceAndItsResultSeenByTheCaller) {
  SideThread side;
  for (size_t n : {0, 1, 7, 8, 9, 100, 10000}) {
    std::vector<int> calls(n, 0);  // written by either thread, read here
    std::vector<std::atomic<int>> counted(n);
    side.ForEach(n, [&](size_t i) {
      ++calls[i];
      counted[i].fetch_add(1);
    });
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(calls[i], 1) << "n " << n << " i " << i;
      ASSERT_EQ(counted[i].load(), 1) << "n " << n << " i " << i;
    }
  }
}

TEST(SideThreadTest, ShortLoopsStayOnTheCaller) {
  SideThread side;
  const std::thread::id me = std::this_thread::get_id();
  bool elsewhere = false;  // only the caller writes it in a short loop
  side.ForEach(SideThread::kMinParallel - 1, [&](size_t) {
    if (std::this_thread::get_id() != me) elsewhere = true;
  });
  EXPECT_FALSE(elsewhere);
  EXPECT_EQ(side.shared_loops(), 0u);
}

// A call on the caller waits until another thread has taken an index: the
// loop ends only because the side thread shares it (the side thread may
// also take every index before the caller takes one).
TEST(SideThreadTest, TheSideThreadTakesPartInALongLoop) {
  SideThread side;
  for (int round = 0; round < 3; ++round) {
    const std::thread::id me = std::this_thread::get_id();
    Mutex mu;
    std::set<std::thread::id> threads;
    bool other = false;
    side.ForEach(64, [&](size_t) {
      MutexLock lock(&mu);
      threads.insert(std::this_thread::get_id());
      if (std::this_thread::get_id() != me) {
        other = true;
        return;
      }
      mu.AwaitWithDeadline([&]()
                               ABSL_NO_THREAD_SAFETY_ANALYSIS { return other; },
                           absl::Now() + absl::Seconds(10));
    });
    MutexLock lock(&mu);
    EXPECT_TRUE(other) << "round " << round;
    threads.erase(me);
    EXPECT_EQ(threads.size(), 1u) << "round " << round;
  }
  EXPECT_EQ(side.shared_loops(), 3u);
}

TEST(SideThreadTest, DestroyedWithAndWithoutItsThread) {
  { SideThread never_started; }
  {
    SideThread side;
    std::atomic<int> sum{0};
    side.ForEach(1000, [&](size_t i) { sum += static_cast<int>(i); });
    EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  }
}

}  // namespace
}  // namespace kiln
