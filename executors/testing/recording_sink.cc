#include "executors/testing/recording_sink.h"

namespace kiln {
namespace conformance {

void RecordingSink::OnLine(v1::LogLine::Stream stream, absl::string_view line,
                           absl::Time time) {
  {
    MutexLock lock(&mu_);
    if (in_call_ || time < last_) consistent_ = false;
    in_call_ = true;
    last_ = time;
  }
  MutexLock lock(&mu_);
  lines_.emplace_back(stream, std::string(line));
  in_call_ = false;
}

std::vector<std::string> RecordingSink::Lines(
    v1::LogLine::Stream stream) const {
  MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [s, line] : lines_) {
    if (s == stream) out.push_back(line);
  }
  return out;
}

size_t RecordingSink::LineCount() const {
  MutexLock lock(&mu_);
  return lines_.size();
}

bool RecordingSink::AwaitLines(size_t count, absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      [this, count]()
          ABSL_NO_THREAD_SAFETY_ANALYSIS { return lines_.size() >= count; },
      absl::Now() + timeout);
}

bool RecordingSink::Consistent() const {
  MutexLock lock(&mu_);
  return consistent_;
}

}  // namespace conformance
}  // namespace kiln
