#include "base/mutex.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(MutexTest, AwaitReturnsAtOnceWhenTheConditionHolds) {
  Mutex mu;
  MutexLock lock(&mu);
  int evaluations = 0;
  mu.Await([&] { return ++evaluations > 0; });
  EXPECT_EQ(evaluations, 1);
}

TEST(MutexTest, AwaitWakesWhenAnotherThreadMakesTheConditionTrue) {
  Mutex mu;
  bool ready = false;  // guarded by mu
  std::thread waiter([&] {
    MutexLock lock(&mu);
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return ready; });
    EXPECT_TRUE(ready);
  });
  absl::SleepFor(absl::Milliseconds(20));
  {
    MutexLock lock(&mu);
    ready = true;
  }
  waiter.join();
}

// The point of evaluating conditions in the releasing thread: a waiter
// whose condition stays false is not woken by every Unlock.
TEST(MutexTest, UnlocksThatLeaveTheConditionFalseDoNotWakeTheWaiter) {
  Mutex mu;
  int counter = 0;    // guarded by mu
  bool done = false;  // guarded by mu
  std::atomic<int> waiter_evaluations{0};
  std::atomic<bool> waiting{false};
  std::thread waiter([&] {
    const std::thread::id me = std::this_thread::get_id();
    MutexLock lock(&mu);
    waiting = true;
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      if (std::this_thread::get_id() == me) ++waiter_evaluations;
      return done;
    });
  });
  while (!waiting) absl::SleepFor(absl::Milliseconds(1));
  for (int i = 0; i < 300; ++i) {
    {
      MutexLock lock(&mu);
      ++counter;
    }
    // Time for a woken waiter to take the lock and look.
    absl::SleepFor(absl::Microseconds(100));
  }
  {
    MutexLock lock(&mu);
    done = true;
  }
  waiter.join();
  // Once on entry, once when woken (and perhaps once more if it raced the
  // first Lock above); never once per Unlock.
  EXPECT_LE(waiter_evaluations.load(), 3);
  EXPECT_EQ(counter, 300);
}

TEST(MutexTest, AwaitWithDeadlineGivesUpAndReportsTheCondition) {
  Mutex mu;
  MutexLock lock(&mu);
  absl::Time start = absl::Now();
  EXPECT_FALSE(mu.AwaitWithDeadline([] { return false; },
                                    start + absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(25));
  EXPECT_FALSE(
      mu.AwaitWithDeadline([] { return false; }, absl::InfinitePast()));
  EXPECT_TRUE(mu.AwaitWithDeadline([] { return true; }, absl::InfinitePast()));
}

// A thread that waits lets go of the lock: a waiter whose condition it
// made true before waiting must wake (no Unlock happens in between).
TEST(MutexTest, WaitingReleasesTheLockToOtherWaiters) {
  Mutex mu;
  int stage = 0;  // guarded by mu
  std::atomic<bool> first_waiting{false};
  std::thread first([&] {
    MutexLock lock(&mu);
    first_waiting = true;
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stage == 1; });
    stage = 2;
  });
  while (!first_waiting) absl::SleepFor(absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(10));
  MutexLock lock(&mu);
  stage = 1;
  // Wakes `first` only by waiting itself.
  EXPECT_TRUE(mu.AwaitWithDeadline(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stage == 2; },
      absl::Now() + absl::Seconds(30)));
  mu.Unlock();
  first.join();
  mu.Lock();
}

// Several waiters on different conditions, a producer handing out tokens
// one at a time: each waiter wakes exactly for its own.
TEST(MutexTest, OnlyTheWaiterWhoseConditionHoldsProceeds) {
  Mutex mu;
  int turn = -1;           // guarded by mu
  std::vector<int> order;  // guarded by mu
  constexpr int kWaiters = 8;
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] {
      MutexLock lock(&mu);
      mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return turn == i; });
      order.push_back(i);
      turn = -1;
    });
  }
  for (int i = kWaiters - 1; i >= 0; --i) {
    MutexLock lock(&mu);
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return turn == -1; });
    turn = i;
  }
  for (std::thread& t : waiters) t.join();
  ASSERT_EQ(order.size(), static_cast<size_t>(kWaiters));
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(order[i], kWaiters - 1 - i);
}

// A bounded queue under contention: nothing lost, nothing stuck.
TEST(MutexTest, ProducersAndConsumersOfABoundedQueue) {
  Mutex mu;
  std::vector<int> queue;  // guarded by mu
  long long sum = 0;       // guarded by mu
  int consumed = 0;        // guarded by mu
  constexpr int kProducers = 3, kConsumers = 3, kItems = 3000, kRoom = 4;
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&] {
      for (int i = 1; i <= kItems; ++i) {
        MutexLock lock(&mu);
        mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return queue.size() < kRoom;
        });
        queue.push_back(i);
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      while (true) {
        MutexLock lock(&mu);
        mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return !queue.empty() || consumed == kProducers * kItems;
        });
        if (queue.empty()) return;
        sum += queue.back();
        queue.pop_back();
        ++consumed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(consumed, kProducers * kItems);
  EXPECT_EQ(sum,
            static_cast<long long>(kProducers) * kItems * (kItems + 1) / 2);
}

}  // namespace
}  // namespace kiln
