#include "executors/kubernetes/log_dedup.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kiln {
namespace kubernetes {
namespace {

absl::Time At(int64_t sec, int64_t nanos) {
  return absl::FromUnixSeconds(sec) + absl::Nanoseconds(nanos);
}

TEST(ParseTimestampedLine, SplitsStampAndText) {
  auto line =
      ParseTimestampedLine("2026-12-02T11:25:04.123456789Z hello  world");
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->text, "hello  world");
  EXPECT_EQ(line->time,
            absl::FromUnixSeconds(1796210704) + absl::Nanoseconds(123456789));
  auto empty = ParseTimestampedLine("2026-12-02T11:25:04Z");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->text, "");
  auto blank = ParseTimestampedLine("2026-12-02T11:25:04Z ");
  ASSERT_TRUE(blank.ok());
  EXPECT_EQ(blank->text, "");
  EXPECT_FALSE(ParseTimestampedLine("hello world").ok());
  EXPECT_FALSE(ParseTimestampedLine("").ok());
}

// A log of (time, text) lines; a stream from `since` (whole seconds, as the
// API server applies it) returns every line at or after it.
struct Log {
  std::vector<std::pair<absl::Time, std::string>> lines;
  std::vector<std::pair<absl::Time, std::string>> From(
      std::optional<absl::Time> since) const {
    std::vector<std::pair<absl::Time, std::string>> out;
    for (const auto& l : lines) {
      if (!since || l.first >= *since) out.push_back(l);
    }
    return out;
  }
};

TEST(LogDeduplicator, ResumedStreamsDeliverEachLineOnce) {
  Log log;
  // Several lines per second, some with identical timestamps.
  int n = 0;
  for (int sec = 0; sec < 4; ++sec) {
    for (int i = 0; i < 5; ++i) {
      absl::Time t = At(1000 + sec, i < 2 ? 0 : i * 1000);
      log.lines.push_back({t, "line " + std::to_string(n++)});
    }
  }
  // Drop the stream after every k-th line, for several k.
  for (size_t cut : {1u, 2u, 3u, 7u, 11u}) {
    LogDeduplicator dedup;
    std::vector<std::string> delivered;
    while (delivered.size() < log.lines.size()) {
      dedup.BeginStream();
      auto stream = log.From(dedup.ResumeTime());
      size_t read = 0;
      for (const auto& [t, text] : stream) {
        if (dedup.Accept(t)) {
          delivered.push_back(text);
          if (++read == cut) break;  // the connection drops here
        }
      }
      if (read == 0) break;
    }
    ASSERT_EQ(delivered.size(), log.lines.size()) << "cut " << cut;
    for (size_t i = 0; i < delivered.size(); ++i) {
      EXPECT_EQ(delivered[i], log.lines[i].second) << "cut " << cut;
    }
  }
}

TEST(LogDeduplicator, ResumeTimeIsTheLastSecond) {
  LogDeduplicator dedup;
  EXPECT_FALSE(dedup.ResumeTime().has_value());
  dedup.BeginStream();
  EXPECT_TRUE(dedup.Accept(At(5, 900)));
  EXPECT_EQ(*dedup.ResumeTime(), absl::FromUnixSeconds(5));
}

TEST(LogDeduplicator, NewLinesWithTheSameStampAfterAResumeAreKept) {
  LogDeduplicator dedup;
  dedup.BeginStream();
  EXPECT_TRUE(dedup.Accept(At(1, 5)));
  EXPECT_TRUE(dedup.Accept(At(1, 5)));
  dedup.BeginStream();
  EXPECT_FALSE(dedup.Accept(At(1, 0)));  // older: repeat
  EXPECT_FALSE(dedup.Accept(At(1, 5)));  // the two delivered ones
  EXPECT_FALSE(dedup.Accept(At(1, 5)));
  EXPECT_TRUE(dedup.Accept(At(1, 5)));  // a third one is new
  EXPECT_TRUE(dedup.Accept(At(2, 0)));
  EXPECT_EQ(dedup.dropped(), 3);
}

}  // namespace
}  // namespace kubernetes
}  // namespace kiln
