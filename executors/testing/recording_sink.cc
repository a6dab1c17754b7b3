#include "executors/testing/recording_sink.h"

namespace kiln {
namespace conformance {

void RecordingSink::OnLine(v1::LogLine::Stream stream, absl::string_view line,
                           absl::Time time) {
  {
    absl::MutexLock lock(&mu_);
    if (in_call_ || time < last_) consistent_ = false;
    in_call_ = true;
    last_ = time;
  }
  absl::MutexLock lock(&mu_);
  lines_.emplace_back(stream, std::string(line));
  in_call_ = false;
}

std::vector<std::string> RecordingSink::Lines(
    v1::LogLine::Stream stream) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [s, line] : lines_) {
    if (s == stream) out.push_back(line);
  }
  return out;
}

size_t RecordingSink::LineCount() const {
  absl::MutexLock lock(&mu_);
  return lines_.size();
}

bool RecordingSink::AwaitLines(size_t count, absl::Duration timeout) const {
  auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return lines_.size() >= count;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool RecordingSink::Consistent() const {
  absl::MutexLock lock(&mu_);
  return consistent_;
}

}  // namespace conformance
}  // namespace kiln
