// The executor interface: run one command, stream its output, wait for it,
// cancel it. Ninja's CommandRunner / BuildKit's Executor, reduced.
//
// Two request modes (docs/executor-contract.md):
//   - location-independent (request.workspace empty): the request carries
//     the input artifacts by digest with their workspace paths and the
//     declared outputs. The executor creates a fresh workspace wherever it
//     runs the command, materializes the inputs in order (through an
//     ArtifactAccess, artifact_access.h, for an executor on this host),
//     runs the command, captures the outputs after a successful exit and
//     returns their digests in ExecResult.outputs, then removes the
//     workspace (unless keep_workspace; a failed removal is a warning in
//     ExecResult.warnings, never silent). An input that cannot be
//     materialized is INPUTS_FAILED (the command never ran); an output
//     that cannot be captured is OUTPUTS_FAILED.
//   - host workspace (request.workspace set; the engine's path until it is
//     switched over): the engine prepared the workspace before Start() and
//     collects the outputs after Wait(); inputs/outputs must be empty.
// Either way an executor never touches the engine's stores except through
// the ArtifactAccess it was given. A command that fails, times out or is
// cancelled is a *result* (ExecResult.status), never an error Status.
#ifndef KILN_EXECUTORS_EXECUTOR_H_
#define KILN_EXECUTORS_EXECUTOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "executors/artifact_access.h"
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

// What an executor can do, so that validation can refuse (before anything
// runs) a task it cannot execute.
struct ExecutorCapabilities {
  // Runs request.image (else only "" = the host's root filesystem).
  bool images = false;
  bool ImagesSupported() const { return images; }
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Short name for logs and `kiln` output, e.g. "local-sandbox".
  virtual std::string Name() const = 0;

  // What about this executor can change a task's result (kernel family, CPU
  // architecture, rootfs policy, executor version). Part of every cache key.
  virtual std::string Platform() const = 0;

  // What this executor supports (default: no images).
  virtual ExecutorCapabilities Capabilities() const { return {}; }

  // Starts request.argv in the workspace (request.workspace, or a fresh one
  // the executor creates and stages; see the modes above). `sink` must
  // outlive the returned Execution. Returns an error only when nothing was
  // started (InvalidArgument: a malformed request, e.g. an image this
  // executor cannot run, or the new mode without an ArtifactAccess;
  // Unavailable/ResourceExhausted: the executor cannot run anything now).
  virtual absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) = 0;

  // Starts a location-independent request (inputs by digest, declared
  // outputs, no workspace) as the engine sends it. `host` says where an
  // executor running on this host makes the workspace and how it moves the
  // artifacts (the engine's store); an executor that runs elsewhere (a pod)
  // ignores it and moves bytes through its own channel. The default refuses
  // a request that carries artifacts and otherwise calls Start().
  virtual absl::StatusOr<std::unique_ptr<Execution>> StartStaged(
      const v1::ExecRequest& request, OutputSink* sink,
      const HostWorkspaceOptions& host) {
    if (request.workspace().empty() &&
        (request.inputs_size() > 0 || request.outputs_size() > 0 ||
         !request.report().empty())) {
      return absl::InvalidArgumentError(
          Name() + " cannot move artifacts (inputs/outputs by digest)");
    }
    return Start(request, sink);
  }
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_EXECUTOR_H_
