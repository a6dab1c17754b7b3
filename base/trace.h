// TraceRecorder: spans of work on named tracks, written as a Chrome
// trace-event JSON file ("ph":"X" complete events plus thread_name
// metadata), which Perfetto (ui.perfetto.dev) and chrome://tracing open.
//
// A track is one row of the trace (a "thread" in the file): the engine
// gives the run one and every task one, so that a task's spans nest by
// time on its own row whatever thread did the work. Spans on one track
// must nest (a child lies within its parent) or follow each other; the
// recorder does not reorder or check them.
//
// Bounded: past max_spans, further spans are counted, not kept (the file
// says how many were dropped). Thread-safe.
#ifndef KILN_BASE_TRACE_H_
#define KILN_BASE_TRACE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace kiln {

class TraceRecorder {
 public:
  static constexpr size_t kDefaultMaxSpans = 2000000;
  explicit TraceRecorder(size_t max_spans = kDefaultMaxSpans);

  // The track named `name`, created on first use (numbered from 1 in
  // order of creation, which is the order rows are shown in).
  int Track(const std::string& name);
  // The track of a pipeline task ("task NAME"), as every part of the
  // engine names it.
  int TaskTrack(const std::string& task) { return Track("task " + task); }
  // Records [begin, end) on `track`; end before begin is clamped to begin.
  // `args`: extra key/value strings shown with the span.
  void Span(int track, std::string name, absl::Time begin, absl::Time end,
            std::vector<std::pair<std::string, std::string>> args = {});

  size_t span_count() const;
  size_t dropped() const;
  // The whole trace as JSON (spans in recording order).
  std::string ToJson() const;
  // Writes ToJson() to `path` (replacing it: written to a temp file beside
  // it, then renamed).
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Span_ {
    int track;
    std::string name;
    absl::Time begin;
    absl::Time end;
    std::vector<std::pair<std::string, std::string>> args;
  };
  const size_t max_spans_;
  const absl::Time origin_;
  mutable Mutex mu_;
  std::map<std::string, int> tracks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> track_names_ ABSL_GUARDED_BY(mu_);
  std::vector<Span_> spans_ ABSL_GUARDED_BY(mu_);
  size_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records one span from construction to destruction (or End()). A null
// recorder makes it do nothing.
class ScopedSpan {
 public:
  ScopedSpan(TraceRecorder* recorder, int track, std::string name)
      : recorder_(recorder),
        track_(track),
        name_(std::move(name)),
        begin_(recorder != nullptr ? absl::Now() : absl::InfinitePast()) {}
  ~ScopedSpan() { End(); }
  ScopedSpan(const ScopedSpan&) = delete;
  ScopedSpan& operator=(const ScopedSpan&) = delete;

  void Arg(std::string key, std::string value) {
    args_.emplace_back(std::move(key), std::move(value));
  }
  void End() {
    if (recorder_ == nullptr) return;
    recorder_->Span(track_, std::move(name_), begin_, absl::Now(),
                    std::move(args_));
    recorder_ = nullptr;
  }

 private:
  TraceRecorder* recorder_;
  int track_;
  std::string name_;
  absl::Time begin_;
  std::vector<std::pair<std::string, std::string>> args_;
};

}  // namespace kiln

#endif  // KILN_BASE_TRACE_H_
