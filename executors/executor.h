// The executor interface: run one prepared command, stream its output, wait
// for it, cancel it. Ninja's CommandRunner / BuildKit's Executor, reduced.
//
// The engine prepares the workspace (inputs unstashed) before Start() and
// collects outputs after Wait(); an executor never touches the engine's
// stores. A command that fails, times out or is cancelled is a *result*
// (ExecResult.status), never an error Status.
#ifndef KILN_EXECUTORS_EXECUTOR_H_
#define KILN_EXECUTORS_EXECUTOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kiln/v1/exec.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

// Receives a command's output, one line at a time (without the trailing
// newline; a final unterminated line is delivered too). Lines longer than an
// executor-defined cap are split. Called from executor-owned threads, never
// concurrently for one Execution.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void OnLine(v1::LogLine::Stream stream, absl::string_view line,
                      absl::Time time) = 0;
};

// One started command.
// Thread-safety: Cancel() may be called from any thread, any number of times,
// also concurrently with Wait(). Wait() is called at most once.
class Execution {
 public:
  virtual ~Execution() = default;

  // Blocks until the command and every process it started are gone and all
  // output has been delivered to the sink. Never fails: sandbox problems are
  // reported as status SETUP_FAILED with a message.
  virtual v1::ExecResult Wait() = 0;

  // Asks the command to stop: SIGTERM to every process of the task, SIGKILL
  // after the request's kill_grace. Wait() then reports CANCELLED (unless the
  // command had already finished). Idempotent.
  virtual void Cancel() = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Short name for logs and `kiln` output, e.g. "local-sandbox".
  virtual std::string Name() const = 0;

  // What about this executor can change a task's result (kernel family, CPU
  // architecture, rootfs policy, executor version). Part of every cache key.
  virtual std::string Platform() const = 0;

  // Starts request.argv in request.workspace. `sink` must outlive the
  // returned Execution. Returns an error only when nothing was started
  // (InvalidArgument: a malformed request; Unavailable/ResourceExhausted:
  // the executor cannot run anything now).
  virtual absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) = 0;
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_EXECUTOR_H_
