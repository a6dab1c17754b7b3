#include "executors/kubernetes/log_dedup.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace kiln {
namespace kubernetes {

absl::StatusOr<TimestampedLine> ParseTimestampedLine(absl::string_view raw) {
  size_t space = raw.find(' ');
  absl::string_view stamp = raw.substr(0, space);
  absl::Time time;
  std::string err;
  if (stamp.empty() ||
      !absl::ParseTime(absl::RFC3339_full, stamp, &time, &err)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log line without an RFC 3339 timestamp: '", raw.substr(0, 64), "'"));
  }
  TimestampedLine line;
  line.time = time;
  line.text = space == absl::string_view::npos ? absl::string_view()
                                               : raw.substr(space + 1);
  return line;
}

void LogDeduplicator::BeginStream() { to_skip_ = count_at_last_; }

bool LogDeduplicator::Accept(absl::Time time) {
  if (last_.has_value()) {
    if (time < *last_) {
      ++dropped_;
      return false;
    }
    if (time == *last_) {
      if (to_skip_ > 0) {
        --to_skip_;
        ++dropped_;
        return false;
      }
      ++count_at_last_;
      return true;
    }
  }
  last_ = time;
  count_at_last_ = 1;
  to_skip_ = 0;
  return true;
}

std::optional<absl::Time> LogDeduplicator::ResumeTime() const {
  if (!last_.has_value()) return std::nullopt;
  return absl::FromUnixSeconds(absl::ToUnixSeconds(*last_));
}

}  // namespace kubernetes
}  // namespace kiln
