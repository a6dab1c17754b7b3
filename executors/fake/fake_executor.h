// FakeExecutor: a deterministic, in-process, scripted Executor for engine and
// scheduler tests (Ninja's FakeCommandRunner, grown up). A test registers
// behaviours: a function from the ExecRequest to a FakeScript (lines, delays,
// side effects in the workspace, then an exit code or a status). Every
// request is recorded. Nothing runs in another process.
//
// Semantics shared with real executors: a script runs from Start() on its own
// thread (one per execution, steps strictly in order); delays end early on
// Cancel() (status CANCELLED) or at the request's timeout, measured from
// Start() (status TIMED_OUT); output past limits.max_log_bytes ends it with
// LOG_LIMIT. A side effect is skipped if the script was stopped before reaching
// it. After an IgnoreTerm() step a Cancel() takes effect only after the
// request's kill_grace (as SIGKILL after an ignored SIGTERM would).
//
// Both request modes of executor.h: with request.workspace the script works
// there; without one (given HostWorkspaceOptions) the fake creates a fresh
// workspace, materializes the inputs, hands the script a request whose
// workspace is that directory (WriteFile/Do write there), captures the
// declared outputs through the ArtifactAccess and removes the workspace.
//
// Thread-safety: every method may be called from any thread.
#ifndef KILN_EXECUTORS_FAKE_FAKE_EXECUTOR_H_
#define KILN_EXECUTORS_FAKE_FAKE_EXECUTOR_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "executors/executor.h"
#include "executors/host_workspace.h"

namespace kiln {

class FakeScript {
 public:
  struct Step {
    enum class Kind { kLine, kDelay, kSideEffect, kFlood, kIgnoreTerm };
    Kind kind = Kind::kLine;
    v1::LogLine::Stream stream = v1::LogLine::STDOUT;
    std::string text;
    absl::Duration delay = absl::ZeroDuration();
    std::function<void(const v1::ExecRequest&)> effect;
  };

  FakeScript& Stdout(std::string line);
  FakeScript& Stderr(std::string line);
  FakeScript& Delay(absl::Duration delay);
  // Runs `effect` (e.g. writes a file in request.workspace) at this point.
  FakeScript& Do(std::function<void(const v1::ExecRequest&)> effect);
  // Writes `content` to the workspace-relative `path` (parents created).
  FakeScript& WriteFile(std::string path, std::string content);
  // From here on, Cancel() stops the script only after kill_grace.
  FakeScript& IgnoreTerm();
  // Prints `line` on stdout forever (until the log limit, cancel, timeout).
  FakeScript& Flood(std::string line);
  // Ends with EXITED and `code` (the default is 0).
  FakeScript& Exit(int code);
  // Ends with any other status (OUT_OF_MEMORY, SETUP_FAILED, SIGNALED, ...).
  FakeScript& End(v1::ExecStatus status, std::string message = "");

  const std::vector<Step>& steps() const { return steps_; }
  v1::ExecStatus status() const { return status_; }
  int exit_code() const { return exit_code_; }
  const std::string& message() const { return message_; }

 private:
  std::vector<Step> steps_;
  v1::ExecStatus status_ = v1::EXITED;
  int exit_code_ = 0;
  std::string message_;
};

using FakeBehavior = std::function<FakeScript(const v1::ExecRequest&)>;

class FakeExecutor : public Executor {
 public:
  FakeExecutor() = default;
  // Also runs location-independent requests (no workspace), in workspaces
  // under workspaces.work_root.
  explicit FakeExecutor(HostWorkspaceOptions workspaces)
      : workspaces_(std::move(workspaces)) {}

  // The behaviour for requests whose argv[0] equals `argv0`.
  void On(const std::string& argv0, FakeBehavior behavior);
  // The behaviour for everything else. Without one, an unknown command ends
  // with SETUP_FAILED ("no fake behaviour for ...").
  void SetDefault(FakeBehavior behavior);
  // While set (not OK), Start() fails with this status and records nothing.
  void FailStarts(absl::Status status);

  // Every request Start() accepted, in order.
  std::vector<v1::ExecRequest> requests() const;
  // Executions started and not yet finished Wait(); and the peak of it.
  int running() const;
  int max_running() const;

  std::string Name() const override { return "fake"; }
  std::string Platform() const override { return "fake/v1"; }
  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override;
  absl::StatusOr<std::unique_ptr<Execution>> StartStaged(
      const v1::ExecRequest& request, OutputSink* sink,
      const HostWorkspaceOptions& host) override;

 private:
  friend class FakeExecution;
  void Finished();
  absl::StatusOr<std::unique_ptr<Execution>> StartPrepared(
      const v1::ExecRequest& request, OutputSink* sink);

  HostWorkspaceOptions workspaces_;
  mutable Mutex mu_;
  std::map<std::string, FakeBehavior> behaviors_ ABSL_GUARDED_BY(mu_);
  FakeBehavior default_behavior_ ABSL_GUARDED_BY(mu_);
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ExecRequest> requests_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_FAKE_FAKE_EXECUTOR_H_
