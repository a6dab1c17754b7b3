// An OutputSink for tests: records every line, thread-safe, and checks
// that the executor honours the sink contract (never concurrent calls for
// one execution, time never going backwards).
#ifndef KILN_EXECUTORS_TESTING_RECORDING_SINK_H_
#define KILN_EXECUTORS_TESTING_RECORDING_SINK_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "executors/executor.h"

namespace kiln {
namespace conformance {

// Thread-safe OutputSink that records every line.
class RecordingSink : public OutputSink {
 public:
  void OnLine(v1::LogLine::Stream stream, absl::string_view line,
              absl::Time time) override;
  std::vector<std::string> Lines(v1::LogLine::Stream stream) const;
  size_t LineCount() const;
  // Blocks until at least `count` lines arrived or `timeout` passed.
  bool AwaitLines(size_t count, absl::Duration timeout) const;
  // The sink was never called concurrently or with time going backwards.
  bool Consistent() const;

 private:
  mutable Mutex mu_;
  std::vector<std::pair<v1::LogLine::Stream, std::string>> lines_
      ABSL_GUARDED_BY(mu_);
  bool in_call_ ABSL_GUARDED_BY(mu_) = false;
  bool consistent_ ABSL_GUARDED_BY(mu_) = true;
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_RECORDING_SINK_H_
