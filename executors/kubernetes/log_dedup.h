// Exactly-once delivery of a container log read as several streams: the
// API server applies `sinceTime` in whole seconds, so a stream resumed
// after a dropped connection repeats the lines of that second. The log's
// timestamps never decrease, so remembering the last delivered timestamp
// and how many lines carried it is enough to drop exactly the repeats.
#ifndef KILN_EXECUTORS_KUBERNETES_LOG_DEDUP_H_
#define KILN_EXECUTORS_KUBERNETES_LOG_DEDUP_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kiln {
namespace kubernetes {

struct TimestampedLine {
  absl::Time time;
  absl::string_view text;  // points into the parsed input
};
// Splits "2026-01-02T03:04:05.123456789Z text" (timestamps=true). A line
// without text ("TIMESTAMP" alone or "TIMESTAMP ") has empty text.
// InvalidArgument when the prefix is not an RFC 3339 time.
absl::StatusOr<TimestampedLine> ParseTimestampedLine(absl::string_view raw);

// Not thread-safe: one per log being followed.
class LogDeduplicator {
 public:
  // Call before reading each stream (the first and every resumed one).
  void BeginStream();
  // Whether a line stamped `time` is new (deliver it) or a repeat.
  bool Accept(absl::Time time);
  // The sinceTime to resume from (the last delivered line's second), or
  // nullopt when nothing was delivered yet (read from the start).
  std::optional<absl::Time> ResumeTime() const;
  int64_t dropped() const { return dropped_; }

 private:
  std::optional<absl::Time> last_;
  int64_t count_at_last_ = 0;  // lines delivered stamped exactly last_
  int64_t to_skip_ = 0;        // repeats of last_ still expected
  int64_t dropped_ = 0;
};

}  // namespace kubernetes
}  // namespace kiln

#endif  // KILN_EXECUTORS_KUBERNETES_LOG_DEDUP_H_
