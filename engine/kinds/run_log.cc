#include "engine/kinds/run_log.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kiln::kinds {

RunLog::RunLog(const KindCall& call) : call_(call) {
  const TaskRunnerContext& ctx = call.env->ctx();
  const v1::Task& task = call.task;
  store::AttemptLogFile::Options log_options;
  log_options.max_bytes = task.hints().resources().max_log_bytes() > 0
                              ? static_cast<int64_t>(std::min<uint64_t>(
                                    task.hints().resources().max_log_bytes(),
                                    std::numeric_limits<int64_t>::max()))
                              : ctx.max_log_file_bytes;
  auto log = store::AttemptLogFile::Open(ctx.store_dir, ctx.run_id, task.name(),
                                         call.attempt, log_options);
  if (log.ok()) {
    file_ = std::move(*log);
  } else {
    call.env->Warn(task.name(), call.attempt,
                   absl::StrCat("the attempt's log file cannot be opened: ",
                                log.status().message()));
  }
}

void RunLog::OnLine(v1::LogLine::Stream stream, absl::string_view line,
                    absl::Time time) {
  std::string text = call_.env->Mask(std::string(line));
  if (file_ != nullptr) {
    absl::Status s = file_->AppendLine(stream == v1::LogLine::STDERR
                                           ? store::LogStream::kStderr
                                           : store::LogStream::kStdout,
                                       text, time);
    if (!s.ok() && !write_failed_.exchange(true)) {
      call_.env->Warn(call_.task.name(), call_.attempt,
                      absl::StrCat("writing the log file: ", s.message()));
    }
  }
  const TaskRunnerContext& ctx = call_.env->ctx();
  if (ctx.emit) {
    v1::RunEvent e;
    auto* log = e.mutable_log();
    log->set_task(call_.task.name());
    log->set_attempt(call_.attempt);
    log->set_stream(stream);
    log->set_text(std::move(text));
    ctx.emit(std::move(e));
  }
}

std::string RunLog::Finish() {
  if (file_ == nullptr) return "";
  const TaskRunnerContext& ctx = call_.env->ctx();
  const std::string& task = call_.task.name();
  absl::Status closed = file_->Close();
  if (!closed.ok()) {
    call_.env->Warn(task, call_.attempt,
                    absl::StrCat("closing the log file: ", closed.message()));
  }
  std::string path = file_->relative_path();
  if (ctx.run_store != nullptr) {
    absl::Status recorded = ctx.run_store->RecordAttemptLog(
        ctx.run_id, task, call_.attempt, path, file_->bytes());
    if (!recorded.ok()) {
      call_.env->Warn(task, call_.attempt,
                      absl::StrCat("recording the log file with the run: ",
                                   recorded.message()));
    }
  }
  return path;
}

}  // namespace kiln::kinds
