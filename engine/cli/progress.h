// Shows a run's events to a person: a live progress view on a terminal
// (running tasks with elapsed time, done/failed/skipped/cached counts, the
// tail of a failing task's log), plain lines otherwise (not a terminal, or
// NO_COLOR / TERM=dumb), or one JSON event per line.
//
// JSON and plain lines are written by one writer thread, a batch at a
// time: the lines of the events that arrive within kCoalesce of the first
// unwritten one (one event batch of the run: the engine delivers a batch at
// once) go out in one write and are flushed, so a reader of the stream
// still sees each batch as it happens, and not one write(2) per line (a
// no-op run of 10,000 tasks wrote 20,000 lines to an unbuffered stderr one
// by one). Finish() and the destructor write what is left.
//
// Thread-safety: OnEvent may be called from any thread; calls are
// serialized internally.
#ifndef KILN_ENGINE_CLI_PROGRESS_H_
#define KILN_ENGINE_CLI_PROGRESS_H_

#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "kiln/v1/run.pb.h"

namespace kiln::cli {

class ProgressView {
 public:
  // How long the writer waits, after the first unwritten line, for the
  // rest of its batch.
  static constexpr absl::Duration kCoalesce = absl::Milliseconds(2);

  enum class Mode { kAuto, kLive, kPlain, kJson };
  // Writes to `out` (stderr for live/plain by default; JSON to stdout).
  explicit ProgressView(Mode mode, FILE* out = nullptr);
  ~ProgressView();

  void OnEvent(const v1::RunEvent& event);
  // Final summary line ("run r123: succeeded in 1.2s — 3 done, 1 cached").
  void Finish(const v1::Run& run);

 private:
  struct TaskView {
    v1::TaskState state = v1::TASK_PENDING;
    absl::Time started;
    std::deque<std::string> tail;  // last lines of output
    int attempt = 0;
  };
  void Redraw() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Ticker();
  // kJson, kPlain: writes the pending lines, a batch at a time, until
  // stop_.
  void Writer();
  void StopThreads();
  // Called after lines were appended to pending_: the writer takes them,
  // or, after Finish (no writer left), they are written at once.
  void Queued() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteChunk(const std::string& chunk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mu_);

  Mode mode_;
  FILE* out_;
  absl::Time start_ = absl::Now();

  Mutex mu_;
  std::map<std::string, TaskView> tasks_ ABSL_GUARDED_BY(mu_);
  int drawn_lines_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string pending_ ABSL_GUARDED_BY(mu_);  // lines not yet written
  std::thread ticker_;
  std::thread writer_;
  // Held while lines go to out_; taken under mu_ (never the reverse), so
  // chunks are written in the order they left pending_.
  Mutex out_mu_ ABSL_ACQUIRED_AFTER(mu_);
};

// "succeeded", "failed", ... for messages.
const char* TaskStateWord(v1::TaskState state);
const char* RunStateWord(v1::RunState state);
// One line for a notification the run posted: "notification N (on) to
// TARGET: delivered (HTTP 200)" or "... NOT delivered after K attempts:
// why" (a warning).
std::string NotificationLine(const v1::NotificationSent& sent);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_PROGRESS_H_
