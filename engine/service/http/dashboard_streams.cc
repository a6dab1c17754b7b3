// The dashboard's streams: a run's events and a task's log as Server-Sent
// Events (each resumable: an event's `id` is where the next request starts,
// sent back as Last-Event-ID), the log's tail and its download.
//
// A stream ends with `event: end` when there is nothing more to come (the
// run or the attempt is over), or `event: stream-error` with a message; a
// server shutting down just closes it (the browser reconnects and resumes).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/file_io.h"
#include "engine/service/http/dashboard_internal.h"
#include "engine/store/log_file.h"

namespace kiln::service::http {
namespace {

constexpr int kEventPage = 64;
constexpr size_t kLogChunk = 64 << 10;
constexpr int kDefaultTail = 200;
constexpr int kMaxTail = 5000;
constexpr size_t kMaxTailBytes = 1 << 20;

// Reads up to `max` bytes at `offset`; a missing file reads as empty.
absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                   size_t max) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return cas::ErrnoStatus(errno, absl::StrCat("open ", path));
  }
  std::string buf(max, '\0');
  ssize_t n;
  do {
    n = pread(fd, buf.data(), max, static_cast<off_t>(offset));
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) return cas::ErrnoStatus(err, absl::StrCat("read ", path));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

nlohmann::json LineJson(absl::string_view line) {
  absl::StatusOr<store::LogFileLine> parsed = store::ParseLogFileLine(line);
  if (!parsed.ok()) return {{"text", std::string(line)}};
  return {{"time", absl::FormatTime(absl::RFC3339_full, parsed->time,
                                    absl::UTCTimeZone())},
          {"stream",
           parsed->stream == store::LogStream::kStderr ? "stderr" : "stdout"},
          {"text", std::move(parsed->text)}};
}

// Whole lines of `data` (the last partial one too when `final`) as JSON;
// returns the bytes they take.
size_t TakeLines(absl::string_view data, bool final, nlohmann::json* lines) {
  size_t end = data.rfind('\n');
  size_t consumed = end == absl::string_view::npos ? 0 : end + 1;
  if (consumed == 0 && (final || data.size() == kLogChunk)) {
    consumed = data.size();  // a final or overlong unterminated line
  }
  absl::string_view text = data.substr(0, consumed);
  while (!text.empty()) {
    size_t nl = text.find('\n');
    lines->push_back(LineJson(text.substr(0, nl)));
    text.remove_prefix(nl == absl::string_view::npos ? text.size() : nl + 1);
  }
  return consumed;
}

std::string SseEvent(const std::string& id, const char* type,
                     const nlohmann::json& data) {
  std::string out;
  if (!id.empty()) absl::StrAppend(&out, "id: ", id, "\n");
  if (type != nullptr) absl::StrAppend(&out, "event: ", type, "\n");
  absl::StrAppend(&out, "data: ", DumpJson(data), "\n\n");
  return out;
}

bool Write(httplib::DataSink& sink, const std::string& text) {
  return sink.write(text.data(), text.size());
}

// The resume point: ?PARAM=N or the Last-Event-ID header.
absl::StatusOr<uint64_t> ResumePoint(const httplib::Request& req,
                                     const char* param) {
  std::string text = req.get_header_value("Last-Event-ID");
  if (text.empty()) text = req.get_param_value(param);
  if (text.empty()) return 0;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(param, " (or Last-Event-ID) must be a number"));
  }
  return value;
}

const v1::TaskStatus* FindTask(const v1::Run& run, const std::string& name) {
  for (const v1::TaskStatus& task : run.tasks()) {
    if (task.name() == name) return &task;
  }
  return nullptr;
}

}  // namespace

bool DashboardServer::TakeStreamSlot(httplib::Response* res) {
  if (open_streams_.fetch_add(1) >= options_.max_streams) {
    open_streams_.fetch_sub(1);
    SendError(res, absl::UnavailableError(absl::StrCat(
                       "the dashboard serves at most ", options_.max_streams,
                       " live streams at once; try again later")));
    return false;
  }
  return true;
}

void DashboardServer::ReleaseStreamSlot() { open_streams_.fetch_sub(1); }

void DashboardServer::Streams() {
  httplib::Server& svr = *server_;

  auto admit = [this](httplib::Response* res) { return TakeStreamSlot(res); };
  auto release = [this](bool) { ReleaseStreamSlot(); };

  // The runs list, live: `event: runs` with GET /api/runs's reply (same
  // filters) at once and whenever it changes (the store is looked at
  // every `poll`, and at once when a run this process executes records an
  // event); keep-alive comments in between.
  svr.Get("/api/runs/stream", [this, admit, release](
                                  const httplib::Request& req,
                                  httplib::Response& res) {
    Caller caller;
    if (!Authenticate(req, &res, "ListRuns", false, &caller)) return;
    absl::StatusOr<nlohmann::json> first = RunsPage(engine_, req);
    if (!first.ok()) return SendError(&res, first.status());
    if (!admit(&res)) return;
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    auto request = std::make_shared<httplib::Request>(req);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, request](size_t, httplib::DataSink& sink) {
          absl::Time next_ping = absl::Now() + options_.keepalive;
          if (!Write(sink, "retry: 2000\n\n")) return false;
          std::string last;
          while (!stopping_.load()) {
            absl::StatusOr<nlohmann::json> page = RunsPage(engine_, *request);
            if (!page.ok()) {
              Write(sink, SseEvent("", "stream-error",
                                   {{"error", page.status().message()}}));
              sink.done();
              return true;
            }
            std::string text = DumpJson(*page);
            if (text != last) {
              if (!Write(sink, SseEvent("", "runs", *page))) return false;
              last = std::move(text);
              next_ping = absl::Now() + options_.keepalive;
            } else if (absl::Now() >= next_ping) {
              if (!Write(sink, ": keep-alive\n\n")) return false;
              next_ping = absl::Now() + options_.keepalive;
            }
            absl::SleepFor(options_.poll);
          }
          return false;  // shutting down: the browser reconnects
        },
        release);
  });

  svr.Get(R"(/api/runs/([^/]+)/events)", [this, admit, release](
                                             const httplib::Request& req,
                                             httplib::Response& res) {
    Caller caller;
    if (!Authenticate(req, &res, "WatchRun", false, &caller)) return;
    const std::string id = req.matches[1];
    absl::StatusOr<uint64_t> after = ResumePoint(req, "after");
    if (!after.ok()) return SendError(&res, after.status());
    absl::StatusOr<v1::Run> raw = engine_->GetRun(id);
    if (!raw.ok()) return SendError(&res, raw.status());
    absl::StatusOr<v1::Pipeline> pipeline = engine_->GetPipeline(id);
    if (!pipeline.ok()) return SendError(&res, pipeline.status());
    if (!admit(&res)) return;
    struct State {
      uint64_t last_sent;
      v1::Run raw;
      v1::Pipeline pipeline;
    };
    auto state = std::make_shared<State>(
        State{*after, std::move(*raw), std::move(*pipeline)});
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, id, state](size_t, httplib::DataSink& sink) {
          absl::Time next_ping = absl::Now() + options_.keepalive;
          if (!Write(sink, "retry: 2000\n\n")) return false;
          while (!stopping_.load()) {
            absl::StatusOr<std::vector<v1::RunEvent>> page =
                engine_->ReadEvents(id, state->last_sent, kEventPage);
            if (!page.ok()) {
              Write(sink, SseEvent("", "stream-error",
                                   {{"error", page.status().message()}}));
              sink.done();
              return true;
            }
            for (v1::RunEvent& event : *page) {
              if (event.sequence() <= state->last_sent) continue;
              RedactEvent(state->pipeline, state->raw, &event);
              if (!Write(sink, SseEvent(absl::StrCat(event.sequence()), nullptr,
                                        ProtoJson(event)))) {
                return false;
              }
              state->last_sent = event.sequence();
              if (event.has_run_state() &&
                  RunIsFinal(event.run_state().state())) {
                Write(sink, SseEvent("", "end", nlohmann::json::object()));
                sink.done();
                return true;
              }
            }
            if (!page->empty()) continue;
            absl::StatusOr<v1::Run> now = engine_->GetRun(id);
            if (now.ok() && RunIsFinal(now->state())) {
              Write(sink, SseEvent("", "end", nlohmann::json::object()));
              sink.done();
              return true;
            }
            if (now.ok() && now->owner_gone()) {
              Write(sink,
                    SseEvent(
                        "", "stream-error",
                        {{"error", absl::StrCat("run ", id,
                                                " is interrupted (owner gone): "
                                                "resume it to continue")}}));
              sink.done();
              return true;
            }
            if (absl::Now() >= next_ping) {
              if (!Write(sink, ": keep-alive\n\n")) return false;
              next_ping = absl::Now() + options_.keepalive;
            }
            (void)engine_->WaitForEvents(id, state->last_sent, options_.poll);
          }
          return false;  // shutting down: the browser resumes
        },
        release);
  });

  svr.Get(R"(/api/runs/([^/]+)/tasks/([^/]+)/log)", [this, admit, release](
                                                        const httplib::Request&
                                                            req,
                                                        httplib::Response&
                                                            res) {
    Caller caller;
    if (!Authenticate(req, &res, "StreamLogs", false, &caller)) return;
    const std::string id = req.matches[1], task_name = req.matches[2];
    absl::StatusOr<v1::Run> run = engine_->GetRun(id);
    if (!run.ok()) return SendError(&res, run.status());
    const v1::TaskStatus* task = FindTask(*run, task_name);
    if (task == nullptr) {
      return SendError(
          &res, absl::NotFoundError(absl::StrCat("run ", id, " has no task \"",
                                                 task_name, "\"")));
    }
    uint32_t attempt = task->attempts();
    if (req.has_param("attempt") &&
        (!absl::SimpleAtoi(req.get_param_value("attempt"), &attempt) ||
         attempt < 1 || attempt > task->attempts())) {
      return SendError(&res, absl::InvalidArgumentError(absl::StrCat(
                                 "attempt must be 1..", task->attempts())));
    }
    const bool pinned = req.has_param("attempt");

    if (req.get_param_value("download") == "1") {
      if (attempt == 0) {
        return SendError(
            &res, absl::FailedPreconditionError("the task has not started"));
      }
      std::string path = engine_->AttemptLogPath(id, task_name, attempt);
      res.set_header("Content-Disposition",
                     absl::StrCat("attachment; filename=\"", id, "-attempt",
                                  attempt, ".log\""));
      auto offset = std::make_shared<uint64_t>(0);
      res.set_chunked_content_provider(
          "text/plain; charset=utf-8",
          [path, offset](size_t, httplib::DataSink& sink) {
            absl::StatusOr<std::string> data = ReadAt(path, *offset, kLogChunk);
            if (!data.ok() || data->empty()) {
              sink.done();
              return true;
            }
            nlohmann::json lines = nlohmann::json::array();
            *offset += TakeLines(*data, data->size() < kLogChunk, &lines);
            std::string text;
            for (const nlohmann::json& line : lines) {
              absl::StrAppend(&text, line.value("text", ""), "\n");
            }
            return Write(sink, text);
          });
      return;
    }

    if (req.get_param_value("follow") != "1") {
      int tail = kDefaultTail;
      if (req.has_param("tail") &&
          (!absl::SimpleAtoi(req.get_param_value("tail"), &tail) || tail < 1 ||
           tail > kMaxTail)) {
        return SendError(&res, absl::InvalidArgumentError(
                                   absl::StrCat("tail must be 1..", kMaxTail)));
      }
      nlohmann::json lines = nlohmann::json::array();
      uint64_t end = 0;
      if (attempt > 0) {
        std::string path = engine_->AttemptLogPath(id, task_name, attempt);
        uint64_t size = FileSize(path);
        uint64_t start = size > kMaxTailBytes ? size - kMaxTailBytes : 0;
        absl::StatusOr<std::string> data = ReadAt(path, start, size - start);
        if (!data.ok()) return SendError(&res, data.status());
        absl::string_view text = *data;
        if (start > 0) {  // drop the partial first line
          size_t nl = text.find('\n');
          text.remove_prefix(nl == absl::string_view::npos ? text.size()
                                                           : nl + 1);
          start = size - text.size();
        }
        size_t last_nl = text.rfind('\n');
        text = text.substr(
            0, last_nl == absl::string_view::npos ? 0 : last_nl + 1);
        end = start + text.size();
        std::deque<absl::string_view> kept;
        while (!text.empty()) {
          size_t nl = text.find('\n');
          kept.push_back(text.substr(0, nl));
          if (kept.size() > static_cast<size_t>(tail)) kept.pop_front();
          text.remove_prefix(nl + 1);
        }
        for (absl::string_view line : kept) lines.push_back(LineJson(line));
      }
      SendJson(&res, nlohmann::json{{"task", task_name},
                                    {"attempt", attempt},
                                    {"next_offset", end},
                                    {"lines", std::move(lines)}});
      return;
    }

    absl::StatusOr<uint64_t> offset = ResumePoint(req, "offset");
    if (!offset.ok()) return SendError(&res, offset.status());
    if (!admit(&res)) return;
    struct State {
      uint32_t attempt;
      uint64_t offset;
    };
    auto state = std::make_shared<State>(State{attempt, *offset});
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, id, task_name, pinned, state](size_t, httplib::DataSink& sink) {
          absl::Time next_ping = absl::Now() + options_.keepalive;
          uint64_t seen_seq = 0;
          if (!Write(sink, "retry: 2000\n\n")) return false;
          while (!stopping_.load()) {
            absl::StatusOr<v1::Run> run = engine_->GetRun(id);
            if (!run.ok()) {
              Write(sink, SseEvent("", "stream-error",
                                   {{"error", run.status().message()}}));
              sink.done();
              return true;
            }
            const v1::TaskStatus* task = FindTask(*run, task_name);
            if (task == nullptr) {
              sink.done();
              return true;
            }
            if (!pinned && state->attempt == 0 && task->attempts() > 0) {
              state->attempt = task->attempts();
            }
            bool over =
                RunIsFinal(run->state()) || TaskIsOver(task->state()) ||
                (state->attempt > 0 && task->attempts() > state->attempt);
            if (state->attempt > 0) {
              std::string path =
                  engine_->AttemptLogPath(id, task_name, state->attempt);
              while (true) {
                absl::StatusOr<std::string> data =
                    ReadAt(path, state->offset, kLogChunk);
                if (!data.ok() || data->empty()) break;
                nlohmann::json lines = nlohmann::json::array();
                size_t used = TakeLines(*data, over, &lines);
                if (used == 0) break;
                state->offset += used;
                if (!Write(sink, SseEvent(absl::StrCat(state->offset), nullptr,
                                          {{"attempt", state->attempt},
                                           {"lines", std::move(lines)}}))) {
                  return false;
                }
              }
            }
            if (over) {
              Write(sink, SseEvent("", "end", {{"attempt", state->attempt}}));
              sink.done();
              return true;
            }
            if (absl::Now() >= next_ping) {
              if (!Write(sink, ": keep-alive\n\n")) return false;
              next_ping = absl::Now() + options_.keepalive;
            }
            absl::StatusOr<uint64_t> last =
                engine_->WaitForEvents(id, seen_seq, options_.poll);
            if (last.ok()) seen_seq = *last;
          }
          return false;
        },
        release);
  });
}

}  // namespace kiln::service::http
