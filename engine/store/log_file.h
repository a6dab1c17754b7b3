// AttemptLogFile: the log of one task attempt, stored as a text file at
// <store_dir>/logs/<run>/<task>.<attempt>.log, one timestamped line per
// output line:
//
//   2025-03-11T10:15:30.123456Z out hello
//   2025-03-11T10:15:30.124000Z err warning: ...
//
// Task names are mapped to safe file names (SafeFileName). A size cap
// bounds the file: past it, one truncation notice is written and further
// lines are counted but dropped. The file is opened for appending, so a
// writer reopened after a crash continues it.
//
// Thread-safety: AppendLine/Flush/Close are thread-safe (stdout and stderr
// readers may append concurrently).
#ifndef KILN_ENGINE_STORE_LOG_FILE_H_
#define KILN_ENGINE_STORE_LOG_FILE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace kiln::store {

// A file name component for any string: bytes outside [A-Za-z0-9_-] (and a
// '.' anywhere, so no name is "." or ".." or hides a suffix) become %XX.
// Injective; never empty ("%" for an empty input).
std::string SafeFileName(absl::string_view name);

// The log's path relative to the store directory:
// "logs/<run>/<SafeFileName(task)>.<attempt>.log".
std::string AttemptLogRelativePath(absl::string_view run_id,
                                   absl::string_view task, uint32_t attempt);

enum class LogStream { kStdout, kStderr };

// One parsed line of a log file.
struct LogFileLine {
  absl::Time time;
  LogStream stream;
  std::string text;
};

// Parses a line written by AttemptLogFile (without its newline);
// InvalidArgument if it does not have that shape.
absl::StatusOr<LogFileLine> ParseLogFileLine(absl::string_view line);

class AttemptLogFile {
 public:
  struct Options {
    int64_t max_bytes = 64 << 20;  // the file's cap, notice included
  };

  // Creates <store_dir>/logs/<run>/ if needed and opens the attempt's log
  // for appending. InvalidArgument for an empty run or task or attempt 0.
  static absl::StatusOr<std::unique_ptr<AttemptLogFile>> Open(
      const std::string& store_dir, absl::string_view run_id,
      absl::string_view task, uint32_t attempt, const Options& options);
  static absl::StatusOr<std::unique_ptr<AttemptLogFile>> Open(
      const std::string& store_dir, absl::string_view run_id,
      absl::string_view task, uint32_t attempt) {
    return Open(store_dir, run_id, task, attempt, Options());
  }

  ~AttemptLogFile();  // closes (errors are lost; call Close to see them)

  // Appends `text` as one line (an embedded '\n' starts another line with
  // the same time and stream). Buffered; Flush() hands it to the OS.
  absl::Status AppendLine(LogStream stream, absl::string_view text,
                          absl::Time time);
  absl::Status Flush();
  // Flushes and closes; later appends fail with FailedPrecondition.
  absl::Status Close();

  // Bytes in the file (including what was there when opened).
  int64_t bytes() const;
  // Lines dropped by the cap.
  int64_t dropped_lines() const;
  // The path relative to the store directory (for RecordAttemptLog) and the
  // full path.
  const std::string& relative_path() const { return relative_path_; }
  const std::string& path() const { return path_; }

 private:
  AttemptLogFile(std::string path, std::string relative_path, std::FILE* file,
                 int64_t bytes, const Options& options);
  absl::Status WriteLocked(absl::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const std::string relative_path_;
  const Options options_;
  mutable kiln::Mutex mu_;
  std::FILE* file_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_lines_ ABSL_GUARDED_BY(mu_) = 0;
  bool truncated_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_LOG_FILE_H_
