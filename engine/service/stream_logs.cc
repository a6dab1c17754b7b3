// KilnService::StreamLogs: one task attempt's log file, from a byte offset,
// in whole lines, optionally following it until the attempt is over.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/file_io.h"
#include "engine/service/kiln_service.h"
#include "engine/store/log_file.h"
#include "google/protobuf/util/time_util.h"

namespace kiln::service {
namespace {

bool TaskOver(v1::TaskState state) {
  return state != v1::TASK_STATE_UNSPECIFIED && state != v1::TASK_PENDING &&
         state != v1::TASK_RUNNING;
}

bool RunOver(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED || state == v1::RUN_TIMED_OUT;
}

const v1::TaskStatus* FindTask(const v1::Run& run, const std::string& name) {
  for (const v1::TaskStatus& task : run.tasks()) {
    if (task.name() == name) return &task;
  }
  return nullptr;
}

// Reads up to `max` bytes at `offset`; a missing file reads as empty.
absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                   size_t max) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
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

void AddLine(absl::string_view line, v1::StreamLogsResponse* out) {
  v1::LogEntry* entry = out->add_lines();
  absl::StatusOr<store::LogFileLine> parsed = store::ParseLogFileLine(line);
  if (!parsed.ok()) {
    entry->set_text(std::string(line));
    return;
  }
  *entry->mutable_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(parsed->time));
  entry->set_stream(parsed->stream == store::LogStream::kStderr
                        ? v1::LogLine::STDERR
                        : v1::LogLine::STDOUT);
  entry->set_text(std::move(parsed->text));
}

}  // namespace

grpc::Status KilnService::StreamLogs(
    grpc::ServerContext* context, const v1::StreamLogsRequest* request,
    grpc::ServerWriter<v1::StreamLogsResponse>* writer) {
  absl::StatusOr<StreamLimiter::Slot> slot = AdmitStream(context, "StreamLogs");
  if (!slot.ok()) return ToGrpc(slot.status());
  const std::string& run_id = request->run_id();
  uint32_t attempt = request->attempt();
  uint64_t offset = request->offset();
  uint64_t seen_seq = 0;
  while (true) {
    absl::StatusOr<v1::Run> run = engine_->GetRun(run_id);
    if (!run.ok()) return ToGrpc(run.status());
    const v1::TaskStatus* task = FindTask(*run, request->task());
    if (task == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("run ", run_id, " has no task \"",
                                       request->task(), "\""));
    }
    bool run_over = RunOver(run->state());
    if (attempt == 0 && task->attempts() > 0) attempt = task->attempts();
    // The attempt is over when a later one started or the task finished.
    bool attempt_over = run_over || TaskOver(task->state()) ||
                        (attempt > 0 && task->attempts() > attempt);
    if (attempt > 0) {
      std::string path =
          engine_->AttemptLogPath(run_id, request->task(), attempt);
      // Drain what is there; after the attempt is over, the last partial
      // line too.
      while (true) {
        absl::StatusOr<std::string> data =
            ReadAt(path, offset, options_.chunk_bytes);
        if (!data.ok()) return ToGrpc(data.status());
        if (data->empty()) break;
        size_t end = data->rfind('\n');
        size_t consumed = end == std::string::npos ? 0 : end + 1;
        if (consumed == 0 &&
            (attempt_over || data->size() == options_.chunk_bytes)) {
          consumed = data->size();  // a final or overlong unterminated line
        }
        if (consumed == 0) break;
        v1::StreamLogsResponse response;
        response.set_task(request->task());
        response.set_attempt(attempt);
        absl::string_view text(data->data(), consumed);
        while (!text.empty()) {
          size_t nl = text.find('\n');
          absl::string_view line = text.substr(0, nl);
          AddLine(line, &response);
          text.remove_prefix(nl == absl::string_view::npos ? text.size()
                                                           : nl + 1);
        }
        offset += consumed;
        response.set_next_offset(offset);
        if (!writer->Write(response)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
        if (StreamOver(context)) break;
      }
    }
    if (!request->follow() || attempt_over) return grpc::Status::OK;
    if (StreamOver(context)) {
      return context->IsCancelled()
                 ? grpc::Status(grpc::StatusCode::CANCELLED, "client went away")
                 : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                absl::StrCat("server shutting down; resume "
                                             "from offset ",
                                             offset));
    }
    // Wake on the run's next event, or poll the file.
    absl::StatusOr<uint64_t> last =
        engine_->WaitForEvents(run_id, seen_seq, options_.poll);
    if (last.ok()) seen_seq = *last;
  }
}

}  // namespace kiln::service
