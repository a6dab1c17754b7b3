#include "executors/fake/fake_executor.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kiln {

FakeScript& FakeScript::Stdout(std::string line) {
  Step step;
  step.kind = Step::Kind::kLine;
  step.text = std::move(line);
  steps_.push_back(std::move(step));
  return *this;
}

FakeScript& FakeScript::Stderr(std::string line) {
  Step step;
  step.kind = Step::Kind::kLine;
  step.stream = v1::LogLine::STDERR;
  step.text = std::move(line);
  steps_.push_back(std::move(step));
  return *this;
}

FakeScript& FakeScript::Delay(absl::Duration delay) {
  Step step;
  step.kind = Step::Kind::kDelay;
  step.delay = delay;
  steps_.push_back(std::move(step));
  return *this;
}

FakeScript& FakeScript::Do(std::function<void(const v1::ExecRequest&)> effect) {
  Step step;
  step.kind = Step::Kind::kSideEffect;
  step.effect = std::move(effect);
  steps_.push_back(std::move(step));
  return *this;
}

FakeScript& FakeScript::WriteFile(std::string path, std::string content) {
  return Do([path, content](const v1::ExecRequest& request) {
    std::string full = absl::StrCat(request.workspace(), "/", path);
    for (size_t i = request.workspace().size() + 1; i < full.size(); ++i) {
      if (full[i] == '/') mkdir(full.substr(0, i).c_str(), 0755);
    }
    std::ofstream(full, std::ios::binary | std::ios::trunc) << content;
  });
}

FakeScript& FakeScript::IgnoreTerm() {
  Step step;
  step.kind = Step::Kind::kIgnoreTerm;
  steps_.push_back(std::move(step));
  return *this;
}

FakeScript& FakeScript::Flood(std::string line) {
  Step step;
  step.kind = Step::Kind::kFlood;
  step.text = std::move(line);
  steps_.push_back(std::move(step));
  return *this;
}

FakeScript& FakeScript::Exit(int code) {
  status_ = v1::EXITED;
  exit_code_ = code;
  return *this;
}

FakeScript& FakeScript::End(v1::ExecStatus status, std::string message) {
  status_ = status;
  message_ = std::move(message);
  return *this;
}

namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

// Runs its script in Wait(); Cancel() wakes a delay.
class FakeExecution : public Execution {
 public:
  FakeExecution(FakeExecutor* owner, v1::ExecRequest request, FakeScript script,
                OutputSink* sink)
      : owner_(owner),
        request_(std::move(request)),
        script_(std::move(script)),
        sink_(sink),
        start_(absl::Now()) {
    kill_grace_ = request_.limits().has_kill_grace()
                      ? FromProto(request_.limits().kill_grace())
                      : absl::Seconds(2);
    absl::Duration timeout = FromProto(request_.limits().timeout());
    deadline_ = timeout > absl::ZeroDuration() ? start_ + timeout
                                               : absl::InfiniteFuture();
    runner_ = std::thread([this] {
      result_ = RunScript();
      absl::Duration wall = absl::Now() - start_;
      result_.mutable_wall_time()->set_seconds(
          absl::IDivDuration(wall, absl::Seconds(1), &wall));
      result_.mutable_wall_time()->set_nanos(
          static_cast<int32_t>(absl::ToInt64Nanoseconds(wall)));
      result_.set_log_bytes(log_bytes_);
    });
  }

  ~FakeExecution() override {
    if (!waited_) {
      Cancel();
      runner_.join();
      owner_->Finished();
    }
  }

  v1::ExecResult Wait() override {
    waited_ = true;
    runner_.join();
    owner_->Finished();
    return result_;
  }

  void Cancel() override {
    MutexLock lock(&mu_);
    if (!cancelled_) kill_at_ = absl::Now() + kill_grace_;
    cancelled_ = true;
  }

 private:
  // Why the script must stop now, or UNSPECIFIED to go on.
  v1::ExecStatus Interruption() {
    MutexLock lock(&mu_);
    if (Stopping()) return v1::CANCELLED;
    if (absl::Now() >= deadline_) return v1::TIMED_OUT;
    return v1::EXEC_STATUS_UNSPECIFIED;
  }

  // A cancel takes effect at once, or kill_grace later after IgnoreTerm.
  bool Stopping() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_ && (!ignore_term_ || absl::Now() >= kill_at_);
  }

  // Sleeps `delay` unless cancelled or the deadline passes first.
  v1::ExecStatus Sleep(absl::Duration delay) {
    absl::Time until = std::min(absl::Now() + delay, deadline_);
    MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return cancelled_; }, until);
    if (cancelled_ && ignore_term_) {
      // The ignored "SIGTERM": sleep on until the "SIGKILL".
      mu_.AwaitWithDeadline([]() { return false; }, std::min(until, kill_at_));
    }
    if (Stopping()) return v1::CANCELLED;
    if (absl::Now() >= deadline_) return v1::TIMED_OUT;
    return v1::EXEC_STATUS_UNSPECIFIED;
  }

  // Delivers one line; false once the log limit is exceeded.
  bool Emit(v1::LogLine::Stream stream, const std::string& line) {
    uint64_t size = line.size() + 1;
    uint64_t limit = request_.limits().max_log_bytes();
    log_bytes_ += size;
    if (limit > 0 && log_bytes_ > limit) return false;
    sink_->OnLine(stream, line, absl::Now());
    return true;
  }

  v1::ExecResult Stopped(v1::ExecStatus status, std::string message) {
    v1::ExecResult result;
    result.set_status(status);
    result.set_message(std::move(message));
    return result;
  }

  v1::ExecResult RunScript() {
    for (const FakeScript::Step& step : script_.steps()) {
      if (v1::ExecStatus why = Interruption();
          why != v1::EXEC_STATUS_UNSPECIFIED) {
        return Stopped(why, "stopped by the fake executor");
      }
      switch (step.kind) {
        case FakeScript::Step::Kind::kLine:
          if (!Emit(step.stream, step.text)) {
            return Stopped(v1::LOG_LIMIT, "output exceeded max_log_bytes");
          }
          break;
        case FakeScript::Step::Kind::kDelay:
          if (v1::ExecStatus why = Sleep(step.delay);
              why != v1::EXEC_STATUS_UNSPECIFIED) {
            return Stopped(why, "stopped by the fake executor");
          }
          break;
        case FakeScript::Step::Kind::kSideEffect:
          step.effect(request_);
          break;
        case FakeScript::Step::Kind::kIgnoreTerm: {
          MutexLock lock(&mu_);
          ignore_term_ = true;
          break;
        }
        case FakeScript::Step::Kind::kFlood:
          for (;;) {
            if (!Emit(v1::LogLine::STDOUT, step.text)) {
              return Stopped(v1::LOG_LIMIT, "output exceeded max_log_bytes");
            }
            if (v1::ExecStatus why = Interruption();
                why != v1::EXEC_STATUS_UNSPECIFIED) {
              return Stopped(why, "stopped by the fake executor");
            }
          }
      }
    }
    v1::ExecResult result;
    result.set_status(script_.status());
    result.set_exit_code(script_.exit_code());
    result.set_message(script_.message());
    return result;
  }

  FakeExecutor* owner_;
  const v1::ExecRequest request_;
  const FakeScript script_;
  OutputSink* sink_;
  const absl::Time start_;
  absl::Time deadline_;
  bool waited_ = false;
  // Written by runner_ only; read after it is joined.
  uint64_t log_bytes_ = 0;
  v1::ExecResult result_;
  std::thread runner_;
  Mutex mu_;
  absl::Duration kill_grace_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool ignore_term_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time kill_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

void FakeExecutor::On(const std::string& argv0, FakeBehavior behavior) {
  MutexLock lock(&mu_);
  behaviors_[argv0] = std::move(behavior);
}

void FakeExecutor::SetDefault(FakeBehavior behavior) {
  MutexLock lock(&mu_);
  default_behavior_ = std::move(behavior);
}

void FakeExecutor::FailStarts(absl::Status status) {
  MutexLock lock(&mu_);
  start_error_ = std::move(status);
}

std::vector<v1::ExecRequest> FakeExecutor::requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

int FakeExecutor::running() const {
  MutexLock lock(&mu_);
  return running_;
}

int FakeExecutor::max_running() const {
  MutexLock lock(&mu_);
  return max_running_;
}

void FakeExecutor::Finished() {
  MutexLock lock(&mu_);
  --running_;
}

absl::StatusOr<std::unique_ptr<Execution>> FakeExecutor::Start(
    const v1::ExecRequest& request, OutputSink* sink) {
  if (sink == nullptr) return absl::InvalidArgumentError("sink is null");
  if (request.argv_size() == 0) {
    return absl::InvalidArgumentError("argv must not be empty");
  }
  return StartStaged(request, sink, HostWorkspaceOptions());
}

absl::StatusOr<std::unique_ptr<Execution>> FakeExecutor::StartStaged(
    const v1::ExecRequest& request, OutputSink* sink,
    const HostWorkspaceOptions& host) {
  if (sink == nullptr) return absl::InvalidArgumentError("sink is null");
  if (request.argv_size() == 0) {
    return absl::InvalidArgumentError("argv must not be empty");
  }
  if (absl::Status mode = CheckRequestMode(request); !mode.ok()) return mode;
  HostWorkspaceOptions workspaces = MergeHostWorkspace(host, workspaces_);
  // Without workspace options, a request without a workspace and without
  // inputs/outputs runs as before (scripts that touch no files).
  if (!request.workspace().empty() ||
      (workspaces.artifacts == nullptr && request.inputs_size() == 0 &&
       request.outputs_size() == 0 && request.report().empty())) {
    return StartPrepared(request, sink);
  }
  return StartInHostWorkspace(request, workspaces,
                              [this, sink](const v1::ExecRequest& prepared) {
                                return StartPrepared(prepared, sink);
                              });
}

absl::StatusOr<std::unique_ptr<Execution>> FakeExecutor::StartPrepared(
    const v1::ExecRequest& request, OutputSink* sink) {
  FakeBehavior behavior;
  {
    MutexLock lock(&mu_);
    if (!start_error_.ok()) return start_error_;
    requests_.push_back(request);
    ++running_;
    max_running_ = std::max(max_running_, running_);
    auto it = behaviors_.find(request.argv(0));
    behavior = it != behaviors_.end() ? it->second : default_behavior_;
  }
  // The behaviour runs outside the lock: it may call back into the fake.
  FakeScript script;
  if (behavior) {
    script = behavior(request);
  } else {
    script.End(v1::SETUP_FAILED,
               absl::StrCat("no fake behaviour for '", request.argv(0), "'"));
  }
  return std::make_unique<FakeExecution>(this, request, std::move(script),
                                         sink);
}

}  // namespace kiln
