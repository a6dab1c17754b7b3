#include "engine/service/event_queue.h"

#include <thread>

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

TEST(EventQueueTest, OverflowDeliversPrefixThenReports) {
  EventQueue queue(3);
  for (uint64_t seq = 1; seq <= 5; ++seq) queue.Push(Event(seq));
  v1::RunEvent out;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_EQ(queue.Pop(absl::Seconds(1), &out), EventQueue::PopResult::kEvent);
    EXPECT_EQ(out.sequence(), seq);
  }
  EXPECT_EQ(queue.Pop(absl::Seconds(1), &out),
            EventQueue::PopResult::kOverflow);
  // Once overflowed, later events are dropped (no gap can be delivered).
  queue.Push(Event(6));
  EXPECT_EQ(queue.Pop(absl::Seconds(1), &out),
            EventQueue::PopResult::kOverflow);
}

TEST(EventQueueTest, PushNeverBlocksAndWakesPopper) {
  EventQueue queue(100);
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    for (uint64_t seq = 1; seq <= 1000; ++seq) queue.Push(Event(seq));
    queue.Close();
  });
  v1::RunEvent out;
  uint64_t got = 0;
  EventQueue::PopResult r;
  while (true) {
    r = queue.Pop(absl::Seconds(5), &out);
    if (r != EventQueue::PopResult::kEvent) break;
    EXPECT_EQ(out.sequence(), got + 1);
    got = out.sequence();
  }
  producer.join();
  // Either every event arrived and then the close, or the producer outran
  // the popper: then at least a full queue's worth (100) arrived, in order,
  // followed by the overflow report. Never a timeout.
  if (r == EventQueue::PopResult::kClosed) {
    EXPECT_EQ(got, 1000u);
  } else {
    EXPECT_EQ(r, EventQueue::PopResult::kOverflow);
    EXPECT_GE(got, 100u);
    EXPECT_LT(got, 1000u);
  }
}

}  // namespace
}  // namespace kiln::service
