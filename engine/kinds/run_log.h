// The log of one `run` attempt: lines from the executor, masked, to the
// attempt's log file and to log events; the file registered with the run
// when the attempt ends. A write that fails is reported on the task's log
// (once), never dropped silently.
#ifndef KILN_ENGINE_KINDS_RUN_LOG_H_
#define KILN_ENGINE_KINDS_RUN_LOG_H_

#include <atomic>
#include <memory>
#include <string>

#include "engine/kinds/kind.h"
#include "engine/store/log_file.h"

namespace kiln::kinds {

class RunLog : public OutputSink {
 public:
  // Opens the attempt's log file (capped by the task's max_log_bytes or the
  // engine's default); without one, lines still reach events.
  explicit RunLog(const KindCall& call);

  OutputSink* sink() { return this; }
  void OnLine(v1::LogLine::Stream stream, absl::string_view line,
              absl::Time time) override;
  // Closes the file and records it with the run; returns its path relative
  // to the store ("" without a file).
  std::string Finish();

 private:
  const KindCall& call_;
  std::unique_ptr<store::AttemptLogFile> file_;
  // The first failed write is reported (OnLine runs on the executor's
  // stdout and stderr threads).
  std::atomic<bool> write_failed_{false};
};

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_RUN_LOG_H_
