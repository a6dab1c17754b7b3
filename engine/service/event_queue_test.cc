#include "engine/service/event_queue.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kiln::service {
namespace {

v1::RunEvent Event(uint64_t seq) {
  v1::RunEvent event;
  event.set_sequence(seq);
  return event;
}

TEST(EventQueueTest, DeliversInOrder) {
  EventQueue queue(10);
  queue.Push(Event(1));
  queue.Push(Event(2));
  v1::RunEvent out;
  ASSERT_EQ(queue.Pop(absl::Seconds(1), &out), EventQueue::PopResult::kEvent);
  EXPECT_EQ(out.sequence(), 1u);
  ASSERT_EQ(queue.Pop(absl::Seconds(1), &out), EventQueue::PopResult::kEvent);
  EXPECT_EQ(out.sequence(), 2u);
  EXPECT_EQ(queue.Pop(absl::Milliseconds(10), &out),
            EventQueue::PopResult::kTimeout);
}

TEST(EventQueueTest, OverflowDropsQueuedEventsAndReports) {
  EventQueue queue(3);
  int actions = 0;
  queue.SetOverflowAction([&] { ++actions; });
  for (uint64_t seq = 1; seq <= 5; ++seq) queue.Push(Event(seq));
  EXPECT_EQ(actions, 1);
  EXPECT_EQ(queue.bytes(), 0u);  // the backlog is freed at once
  v1::RunEvent out;
  EXPECT_EQ(queue.Pop(absl::Seconds(1), &out),
            EventQueue::PopResult::kOverflow);
  // Once overflowed, later events are dropped (no gap can be delivered).
  queue.Push(Event(6));
  EXPECT_EQ(queue.Pop(absl::Seconds(1), &out),
            EventQueue::PopResult::kOverflow);
  EXPECT_EQ(actions, 1);
}

v1::RunEvent BigLog(uint64_t seq) {
  v1::RunEvent event = Event(seq);
  event.mutable_log()->set_text(std::string(64 << 10, 'x'));
  return event;
}

TEST(EventQueueTest, BoundedInBytesNotOnlyEvents) {
  // 4096 events allowed, but only 1 MiB: 64 KiB lines overflow at ~16.
  EventQueue queue(4096, 1 << 20);
  uint64_t seq = 0;
  while (seq < 100) {
    queue.Push(BigLog(++seq));
    EXPECT_LE(queue.bytes(), size_t{1} << 20);
  }
  v1::RunEvent out;
  EXPECT_EQ(queue.Pop(absl::Seconds(1), &out),
            EventQueue::PopResult::kOverflow);
}

TEST(EventQueueTest, SharedBudgetBoundsAllQueuesAndIsReturned) {
  auto budget = std::make_shared<ByteBudget>(1 << 20);
  {
    EventQueue a(4096, 1 << 20, budget);
    EventQueue b(4096, 1 << 20, budget);
    for (uint64_t seq = 1; seq <= 10; ++seq) a.Push(BigLog(seq));
    int64_t after_a = budget->used();
    EXPECT_GT(after_a, 10 * (64 << 10));
    // b may take only what is left of the shared megabyte.
    for (uint64_t seq = 1; seq <= 10; ++seq) b.Push(BigLog(seq));
    v1::RunEvent out;
    EXPECT_EQ(b.Pop(absl::Seconds(1), &out), EventQueue::PopResult::kOverflow);
    EXPECT_EQ(budget->used(), after_a);  // b's bytes were given back
    ASSERT_EQ(a.Pop(absl::Seconds(1), &out), EventQueue::PopResult::kEvent);
    EXPECT_LT(budget->used(), after_a);
  }
  EXPECT_EQ(budget->used(), 0);
}

// Push from another thread wakes a waiting Pop (each Pop may wait 30 s;
// all of them together must take far less), and up to the queue's capacity
// nothing is dropped however far the popper lags: every event arrives, in
// order, then the close.
TEST(EventQueueTest, PushNeverBlocksAndWakesPopper) {
  EventQueue queue(100);
  std::vector<uint64_t> got;
  EventQueue::PopResult last = EventQueue::PopResult::kTimeout;
  absl::Time start = absl::Now();
  std::thread popper([&] {
    v1::RunEvent out;
    while ((last = queue.Pop(absl::Seconds(30), &out)) ==
           EventQueue::PopResult::kEvent) {
      got.push_back(out.sequence());
    }
  });
  for (uint64_t seq = 1; seq <= 100; ++seq) queue.Push(Event(seq));
  queue.Close();
  popper.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(last, EventQueue::PopResult::kClosed);
  ASSERT_EQ(got.size(), 100u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i + 1);
}

}  // namespace
}  // namespace kiln::service
