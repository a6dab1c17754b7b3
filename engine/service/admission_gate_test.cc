#include "engine/service/admission_gate.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gtest/gtest.h"

namespace kiln::service {
namespace {

const absl::Time kNever = absl::InfiniteFuture();

// Waits (up to a minute) until `gate` has `n` callers waiting.
void AwaitWaiting(const AdmissionGate& gate, int n) {
  const absl::Time give_up = absl::Now() + absl::Minutes(1);
  while (gate.waiting() != n && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(gate.waiting(), n);
}

TEST(AdmissionGateTest, LetsCapacityInAndTheNextWhenOneLeaves) {
  AdmissionGate gate(2);
  AdmissionGate::Pass a, b;
  ASSERT_TRUE(gate.Enter("a", kNever, nullptr, &a).ok());
  ASSERT_TRUE(gate.Enter("b", kNever, nullptr, &b).ok());
  EXPECT_TRUE(a.held());
  EXPECT_EQ(gate.inside(), 2);

  std::atomic<bool> entered{false};
  std::thread third([&] {
    AdmissionGate::Pass c;
    ASSERT_TRUE(gate.Enter("c", kNever, nullptr, &c).ok());
    entered = true;
  });
  AwaitWaiting(gate, 1);
  EXPECT_FALSE(entered);
  a = AdmissionGate::Pass();  // gives the place back
  third.join();
  EXPECT_TRUE(entered);
  EXPECT_EQ(gate.waiting(), 0);
  EXPECT_EQ(gate.inside(), 1);  // b; the third left again
  b = AdmissionGate::Pass();
  EXPECT_EQ(gate.inside(), 0);
}

TEST(AdmissionGateTest, WaitersEnterInArrivalOrder) {
  AdmissionGate gate(1);
  AdmissionGate::Pass holder;
  ASSERT_TRUE(gate.Enter("holder", kNever, nullptr, &holder).ok());
  constexpr int kWaiters = 8;
  Mutex mu;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      AdmissionGate::Pass pass;
      ASSERT_TRUE(gate.Enter("w", kNever, nullptr, &pass).ok());
      MutexLock lock(&mu);
      order.push_back(i);
    });
    AwaitWaiting(gate, i + 1);  // i is in line before i + 1 arrives
  }
  holder = AdmissionGate::Pass();
  for (std::thread& t : threads) t.join();
  std::vector<int> expected;
  for (int i = 0; i < kWaiters; ++i) expected.push_back(i);
  EXPECT_EQ(order, expected);
  EXPECT_EQ(gate.inside(), 0);
}

TEST(AdmissionGateTest, ADeadlineEndsTheWaitAndTheLineMovesOn) {
  AdmissionGate gate(1);
  AdmissionGate::Pass holder;
  ASSERT_TRUE(gate.Enter("holder", kNever, nullptr, &holder).ok());

  // The first in line gives up; the second, behind it, must still get in.
  std::atomic<bool> second_in{false};
  std::thread second;
  absl::Status first_status;
  std::thread first([&] {
    AdmissionGate::Pass pass;
    first_status = gate.Enter("first", absl::Now() + absl::Milliseconds(200),
                              nullptr, &pass);
    EXPECT_FALSE(pass.held());
  });
  AwaitWaiting(gate, 1);
  second = std::thread([&] {
    AdmissionGate::Pass pass;
    ASSERT_TRUE(gate.Enter("second", kNever, nullptr, &pass).ok());
    second_in = true;
  });
  first.join();
  EXPECT_EQ(first_status.code(), absl::StatusCode::kDeadlineExceeded)
      << first_status;
  EXPECT_NE(first_status.message().find("first"), std::string::npos);
  AwaitWaiting(gate, 1);  // only the second is left in line
  EXPECT_FALSE(second_in);
  holder = AdmissionGate::Pass();
  second.join();
  EXPECT_TRUE(second_in);
  EXPECT_EQ(gate.inside(), 0);
}

TEST(AdmissionGateTest, CancellationEndsTheWait) {
  AdmissionGate gate(1);
  AdmissionGate::Pass holder;
  ASSERT_TRUE(gate.Enter("holder", kNever, nullptr, &holder).ok());
  std::atomic<bool> cancelled{false};
  absl::Status status;
  std::thread waiter([&] {
    AdmissionGate::Pass pass;
    status = gate.Enter(
        "waiter", kNever, [&] { return cancelled.load(); }, &pass,
        absl::Milliseconds(5));
    EXPECT_FALSE(pass.held());
  });
  AwaitWaiting(gate, 1);
  cancelled = true;
  waiter.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_EQ(gate.waiting(), 0);
  EXPECT_EQ(gate.inside(), 1);
}

TEST(AdmissionGateTest, ANewcomerDoesNotPassTheLine) {
  // A place frees while someone waits: a caller arriving just then queues
  // behind the waiter instead of taking the place.
  AdmissionGate gate(1);
  AdmissionGate::Pass holder;
  ASSERT_TRUE(gate.Enter("holder", kNever, nullptr, &holder).ok());
  Mutex mu;
  std::vector<std::string> order;
  std::thread waiter([&] {
    AdmissionGate::Pass pass;
    ASSERT_TRUE(gate.Enter("waiter", kNever, nullptr, &pass).ok());
    MutexLock lock(&mu);
    order.push_back("waiter");
  });
  AwaitWaiting(gate, 1);
  std::thread newcomer([&] {
    AdmissionGate::Pass pass;
    ASSERT_TRUE(gate.Enter("newcomer", kNever, nullptr, &pass).ok());
    MutexLock lock(&mu);
    order.push_back("newcomer");
  });
  AwaitWaiting(gate, 2);
  holder = AdmissionGate::Pass();
  waiter.join();
  newcomer.join();
  EXPECT_EQ(order, (std::vector<std::string>{"waiter", "newcomer"}));
}

TEST(AdmissionGateTest, ManyCallersNeverExceedTheCapacity) {
  AdmissionGate gate(3);
  std::atomic<int> now{0}, most{0}, done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 50; ++k) {
        AdmissionGate::Pass pass;
        ASSERT_TRUE(gate.Enter("c", kNever, nullptr, &pass).ok());
        int n = ++now;
        int m = most.load();
        while (n > m && !most.compare_exchange_weak(m, n)) {
        }
        std::this_thread::yield();
        --now;
        ++done;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(done.load(), 16 * 50);
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(gate.inside(), 0);
  EXPECT_EQ(gate.waiting(), 0);
}

TEST(AdmissionGateTest, AtLeastOnePlaceAndPassesMove) {
  AdmissionGate gate(0);
  EXPECT_EQ(gate.capacity(), 1);
  AdmissionGate::Pass a;
  ASSERT_TRUE(gate.Enter("a", kNever, nullptr, &a).ok());
  AdmissionGate::Pass b(std::move(a));
  EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): moved-from
  EXPECT_TRUE(b.held());
  EXPECT_EQ(gate.inside(), 1);
  AdmissionGate::Pass c;
  c = std::move(b);
  EXPECT_EQ(gate.inside(), 1);
  c = AdmissionGate::Pass();
  EXPECT_EQ(gate.inside(), 0);
}

}  // namespace
}  // namespace kiln::service
