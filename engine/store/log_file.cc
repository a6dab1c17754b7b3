#include "engine/store/log_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status.h"

namespace kiln::store {

namespace {

constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%E6SZ";
// Room kept under the cap for the truncation notice.
constexpr int64_t kNoticeReserve = 160;

std::string FormatLineTime(absl::Time time) {
  return absl::FormatTime(kTimeFormat, time, absl::UTCTimeZone());
}

// "<what> <path>: <strerror(errno)>", coded by base/status.h's mapping.
absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return ::kiln::ErrnoStatus(errno, absl::StrCat(what, " ", path));
}

}  // namespace

std::string SafeFileName(absl::string_view name) {
  if (name.empty()) return "%";
  std::string out;
  for (char c : name) {
    if (absl::ascii_isalnum(c) || c == '_' || c == '-') {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::string AttemptLogRelativePath(absl::string_view run_id,
                                   absl::string_view task, uint32_t attempt) {
  return absl::StrCat("logs/", SafeFileName(run_id), "/", SafeFileName(task),
                      ".", attempt, ".log");
}

absl::StatusOr<LogFileLine> ParseLogFileLine(absl::string_view line) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(line, absl::MaxSplits(' ', 2));
  if (parts.size() < 2) {
    return absl::InvalidArgumentError("log line: missing time or stream");
  }
  LogFileLine parsed;
  std::string error;
  if (!absl::ParseTime(kTimeFormat, parts[0], absl::UTCTimeZone(), &parsed.time,
                       &error)) {
    return absl::InvalidArgumentError(absl::StrCat("log line time: ", error));
  }
  if (parts[1] == "out") {
    parsed.stream = LogStream::kStdout;
  } else if (parts[1] == "err") {
    parsed.stream = LogStream::kStderr;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("log line: unknown stream '", parts[1], "'"));
  }
  if (parts.size() == 3) parsed.text = std::string(parts[2]);
  return parsed;
}

AttemptLogFile::AttemptLogFile(std::string path, std::string relative_path,
                               std::FILE* file, int64_t bytes,
                               const Options& options)
    : path_(std::move(path)),
      relative_path_(std::move(relative_path)),
      options_(options),
      file_(file),
      bytes_(bytes) {}

AttemptLogFile::~AttemptLogFile() { Close().IgnoreError(); }

absl::StatusOr<std::unique_ptr<AttemptLogFile>> AttemptLogFile::Open(
    const std::string& store_dir, absl::string_view run_id,
    absl::string_view task, uint32_t attempt, const Options& options) {
  if (run_id.empty() || task.empty() || attempt == 0) {
    return absl::InvalidArgumentError(
        "AttemptLogFile: need a run id, a task name and an attempt >= 1");
  }
  std::string relative = AttemptLogRelativePath(run_id, task, attempt);
  std::string path = absl::StrCat(store_dir, "/", relative);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(),
                                      ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("creating log directory for ", path, ": ", ec.message()));
  }
  // Logs are the owner's only: logs/ and logs/<run>/ are 0700.
  for (const std::string& dir :
       {absl::StrCat(store_dir, "/logs"),
        std::filesystem::path(path).parent_path().string()}) {
    if (chmod(dir.c_str(), 0700) != 0) return ErrnoError("restricting", dir);
  }
  // O_NOFOLLOW: never append through a planted symlink.
  int fd = open(path.c_str(),
                O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoError("opening log", path);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("log ", path, " is not a regular file"));
  }
  std::FILE* file = fdopen(fd, "a");
  if (file == nullptr) {
    absl::Status s = ErrnoError("opening log", path);
    close(fd);
    return s;
  }
  return std::unique_ptr<AttemptLogFile>(new AttemptLogFile(
      std::move(path), std::move(relative), file, st.st_size, options));
}

absl::Status AttemptLogFile::WriteLocked(absl::string_view data) {
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
    return ErrnoError("writing log", path_);
  }
  bytes_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status AttemptLogFile::AppendLine(LogStream stream,
                                        absl::string_view text,
                                        absl::Time time) {
  const std::string prefix = absl::StrCat(
      FormatLineTime(time), stream == LogStream::kStdout ? " out " : " err ");
  kiln::MutexLock lock(&mu_);
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("log ", path_, " is closed"));
  }
  for (absl::string_view piece : absl::StrSplit(text, '\n')) {
    if (truncated_) {
      ++dropped_lines_;
      continue;
    }
    const int64_t size = static_cast<int64_t>(prefix.size() + piece.size() + 1);
    if (bytes_ + size > options_.max_bytes - kNoticeReserve) {
      truncated_ = true;
      ++dropped_lines_;
      absl::Status s = WriteLocked(
          absl::StrCat(FormatLineTime(time), " err [kiln: log truncated at ",
                       bytes_, " bytes; further lines dropped]\n"));
      if (!s.ok()) return s;
      continue;
    }
    absl::Status s = WriteLocked(absl::StrCat(prefix, piece, "\n"));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status AttemptLogFile::Flush() {
  kiln::MutexLock lock(&mu_);
  if (file_ == nullptr) return absl::OkStatus();
  if (std::fflush(file_) != 0) return ErrnoError("flushing log", path_);
  return absl::OkStatus();
}

absl::Status AttemptLogFile::Close() {
  kiln::MutexLock lock(&mu_);
  if (file_ == nullptr) return absl::OkStatus();
  int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) return ErrnoError("closing log", path_);
  return absl::OkStatus();
}

int64_t AttemptLogFile::bytes() const {
  kiln::MutexLock lock(&mu_);
  return bytes_;
}

int64_t AttemptLogFile::dropped_lines() const {
  kiln::MutexLock lock(&mu_);
  return dropped_lines_;
}

}  // namespace kiln::store
