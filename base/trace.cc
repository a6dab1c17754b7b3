#include "base/trace.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {
namespace {

void AppendJsonString(std::string* out, const std::string& s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Microseconds with nanosecond precision, as the format's "ts"/"dur" take.
std::string Micros(absl::Duration d) {
  int64_t ns = absl::ToInt64Nanoseconds(d);
  if (ns < 0) ns = 0;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%lld.%03lld",
                static_cast<long long>(ns / 1000),
                static_cast<long long>(ns % 1000));
  return buf;
}

}  // namespace

TraceRecorder::TraceRecorder(size_t max_spans)
    : max_spans_(max_spans), origin_(absl::Now()) {}

int TraceRecorder::Track(const std::string& name) {
  MutexLock lock(&mu_);
  auto [it, inserted] =
      tracks_.emplace(name, static_cast<int>(track_names_.size()) + 1);
  if (inserted) track_names_.push_back(name);
  return it->second;
}

void TraceRecorder::Span(
    int track, std::string name, absl::Time begin, absl::Time end,
    std::vector<std::pair<std::string, std::string>> args) {
  if (end < begin) end = begin;
  MutexLock lock(&mu_);
  if (spans_.size() >= max_spans_) {
    ++dropped_;
    return;
  }
  spans_.push_back(Span_{track, std::move(name), begin, end, std::move(args)});
}

size_t TraceRecorder::span_count() const {
  MutexLock lock(&mu_);
  return spans_.size();
}

size_t TraceRecorder::dropped() const {
  MutexLock lock(&mu_);
  return dropped_;
}

std::string TraceRecorder::ToJson() const {
  MutexLock lock(&mu_);
  std::string out = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"tool\":";
  AppendJsonString(&out, "kiln");
  absl::StrAppend(&out, ",\"dropped_spans\":\"", dropped_, "\"},");
  out.append("\"traceEvents\":[\n");
  bool first = true;
  auto sep = [&]() {
    if (!first) out.append(",\n");
    first = false;
  };
  sep();
  out.append(
      "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,"
      "\"args\":{\"name\":\"kiln\"}}");
  for (size_t i = 0; i < track_names_.size(); ++i) {
    sep();
    absl::StrAppend(&out, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,",
                    "\"tid\":", i + 1, ",\"args\":{\"name\":");
    AppendJsonString(&out, track_names_[i]);
    out.append("}}");
    sep();
    absl::StrAppend(
        &out, "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,",
        "\"tid\":", i + 1, ",\"args\":{\"sort_index\":", i + 1, "}}");
  }
  for (const Span_& s : spans_) {
    sep();
    out.append("{\"name\":");
    AppendJsonString(&out, s.name);
    absl::StrAppend(&out, ",\"cat\":\"kiln\",\"ph\":\"X\",\"pid\":1,\"tid\":",
                    s.track, ",\"ts\":", Micros(s.begin - origin_),
                    ",\"dur\":", Micros(s.end - s.begin));
    if (!s.args.empty()) {
      out.append(",\"args\":{");
      for (size_t i = 0; i < s.args.size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendJsonString(&out, s.args[i].first);
        out.push_back(':');
        AppendJsonString(&out, s.args[i].second);
      }
      out.push_back('}');
    }
    out.push_back('}');
  }
  out.append("\n]}\n");
  return out;
}

absl::Status TraceRecorder::WriteFile(const std::string& path) const {
  std::string json = ToJson();
  std::string tmp = absl::StrCat(path, ".tmp-", getpid());
  int fd = open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  size_t done = 0;
  while (done < json.size()) {
    ssize_t n = write(fd, json.data() + done, json.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoStatus(err, absl::StrCat("write ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat("close ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrCat("rename to ", path));
  }
  return absl::OkStatus();
}

}  // namespace kiln
