#include "engine/kinds/run_exec.h"

#include <algorithm>
#include <limits>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "base/trace.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/exec/host_staging.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/run_defaults.h"
#include "engine/kinds/run_log.h"
#include "engine/kinds/task_results.h"
#include "engine/pipeline/substitute.h"
#include "executors/artifact_access.h"

namespace kiln::kinds {
namespace {

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  out.set_seconds(absl::IDivDuration(d, absl::Seconds(1), &d));
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// The location-independent request: inputs by digest with their mount
// paths, the declared outputs; the executor makes the workspace.
v1::ExecRequest BuildRequest(
    const KindCall& call,
    const std::vector<std::pair<std::string, std::string>>& inputs) {
  const v1::Task& task = call.task;
  const v1::RunSpec& run = task.run();
  const TaskRunnerContext& ctx = call.env->ctx();
  v1::ExecRequest req;
  req.set_run_id(ctx.run_id);
  req.set_task(task.name());
  req.set_attempt(call.attempt);
  for (const auto& a : run.command()) req.add_argv(a);
  auto& env = *req.mutable_env();
  env["PATH"] = kDefaultPath;
  env["HOME"] = "/tmp";
  env["TMPDIR"] = "/tmp";
  env["LANG"] = "C.UTF-8";
  env["KILN_RUN_ID"] = ctx.run_id;
  env["KILN_TASK"] = task.name();
  env["KILN_ATTEMPT"] = absl::StrCat(call.attempt);
  for (const auto& e : run.env()) env[e.name()] = e.value();
  for (int i = 0; i < task.inputs_size(); ++i) {
    v1::ExecInput* in = req.add_inputs();
    in->set_artifact(task.inputs(i).artifact());
    in->set_digest(inputs[i].second);
    in->set_path(task.inputs(i).path());
  }
  for (const auto& output : task.outputs()) {
    v1::ExecOutput* out = req.add_outputs();
    out->set_artifact(output.artifact());
    for (const auto& p : output.paths()) out->add_paths(p);
  }
  // Pinned by the run kind ("name@sha256:…"); "" and "host": the host.
  if (!run.image().empty() && run.image() != "host") {
    req.set_image(run.image());
  }
  req.set_report(run.report());
  if (!run.results().empty()) req.set_results_dir(kResultsDir);
  // Hints for a pod executor (not in the key); others ignore them.
  *req.mutable_pod() = task.hints().pod();
  req.set_keep_workspace(ctx.keep_workspaces);
  req.set_workdir(run.workdir());
  req.set_network(run.network());
  auto* limits = req.mutable_limits();
  if (task.hints().has_timeout()) {
    *limits->mutable_timeout() = task.hints().timeout();
  }
  limits->set_memory_bytes(task.hints().resources().memory_bytes());
  limits->set_max_pids(task.hints().resources().max_pids());
  limits->set_max_log_bytes(task.hints().resources().max_log_bytes()
                                ? task.hints().resources().max_log_bytes()
                                : 64 << 20);
  *limits->mutable_kill_grace() = ToProto(absl::Seconds(5));
  return req;
}

// The ExecResult as the task's outcome (before its outputs are collected).
AttemptOutcome ToOutcome(const v1::Task& task, const v1::ExecResult& result,
                         const TaskKey& key) {
  AttemptOutcome o;
  o.cache_key = key.key;
  o.exit_code = result.exit_code();
  switch (result.status()) {
    case v1::EXITED:
      if (result.exit_code() == 0) {
        o.state = v1::TASK_SUCCEEDED;
      } else {
        o.state = v1::TASK_FAILED;
        o.reason = absl::StrCat("exit code ", result.exit_code());
      }
      break;
    case v1::TIMED_OUT:
      o.state = v1::TASK_TIMED_OUT;
      o.reason =
          absl::StrCat("timed out after ",
                       absl::FormatDuration(FromProto(task.hints().timeout())));
      break;
    case v1::CANCELLED:
      o.state = v1::TASK_CANCELLED;
      o.retryable = false;
      o.reason = "cancelled";
      break;
    case v1::INPUTS_FAILED:
    case v1::OUTPUTS_FAILED:
      o.state = v1::TASK_FAILED;
      o.retryable = false;
      o.reason = result.message();
      break;
    case v1::INFRA_FAILED:
      // Where it ran failed under it (pod evicted, node lost, image not
      // pullable, not scheduled): the task's retries apply.
      o.state = v1::TASK_FAILED;
      o.retryable = true;
      o.reason = absl::StrCat("infrastructure failure: ", result.message());
      break;
    case v1::SETUP_FAILED:
      o.state = v1::TASK_FAILED;
      o.retryable = false;
      o.reason = absl::StrCat("sandbox setup failed: ", result.message());
      break;
    default:
      o.state = v1::TASK_FAILED;
      o.reason = result.message().empty() ? v1::ExecStatus_Name(result.status())
                                          : result.message();
  }
  if (!result.message().empty() && o.state != v1::TASK_SUCCEEDED &&
      o.reason.find(result.message()) == std::string::npos) {
    absl::StrAppend(&o.reason, " (", result.message(), ")");
  }
  return o;
}

// The outputs' digests (and the report's) from the result into `o`.
void TakeOutputs(const v1::Task& task, const v1::ExecResult& result,
                 AttemptOutcome* o) {
  for (const auto& output : task.outputs()) {
    auto it = result.outputs().find(output.artifact());
    if (it != result.outputs().end())
      o->outputs[output.artifact()] = it->second;
  }
  if (!result.report_digest().empty()) {
    o->results["report"] = result.report_digest();
  }
}

// The declared results into `o` (as "results.NAME"); a result the command
// got wrong fails the task (not retried: it would fail the same way). A
// result holding a secret (in any form the log mask knows) is refused, not
// masked: it would be stored, cached and substituted into other tasks.
void TakeResults(const KindCall& call, const v1::ExecResult& result,
                 AttemptOutcome* o) {
  const v1::Task& task = call.task;
  if (task.run().results().empty()) return;
  absl::StatusOr<std::map<std::string, std::string>> checked =
      CheckTaskResults(task.run().results(), result.results());
  if (checked.ok()) {
    for (const auto& [name, value] : *checked) {
      if (call.env->Mask(value) != value) {
        checked = absl::InvalidArgumentError(absl::StrCat(
            "result '", name,
            "' contains the value of a secret param (results are recorded "
            "and passed on in clear)"));
        break;
      }
    }
  }
  if (!checked.ok()) {
    std::string cache_key = o->cache_key;
    int exit_code = o->exit_code;
    *o = Failed(checked.status(), "results: ");
    o->cache_key = cache_key;
    o->exit_code = exit_code;
    return;
  }
  for (const auto& [name, value] : *checked) {
    o->results[pipeline::ResultKey(name)] = value;
  }
}

// The profile's view of one execution: when the executor staged inputs
// and captured outputs through the engine's store (possibly from another
// thread), around which the sandbox start and the command are placed.
class TimedAccess : public ArtifactAccess {
 public:
  explicit TimedAccess(ArtifactAccess* inner) : inner_(inner) {}

  absl::Status Materialize(const std::string& digest, int workspace_fd,
                           const std::string& relative_path) override {
    absl::Time begin = absl::Now();
    absl::Status s = inner_->Materialize(digest, workspace_fd, relative_path);
    Mark(&staged_, begin, absl::Now());
    return s;
  }
  absl::StatusOr<std::string> Capture(
      int workspace_fd, const std::vector<std::string>& paths) override {
    absl::Time begin = absl::Now();
    absl::StatusOr<std::string> s = inner_->Capture(workspace_fd, paths);
    Mark(&captured_, begin, absl::Now());
    return s;
  }

  struct Interval {
    absl::Time first = absl::InfiniteFuture();
    absl::Time last = absl::InfinitePast();
    int count = 0;
  };
  Interval staged() const {
    MutexLock lock(&mu_);
    return staged_;
  }
  Interval captured() const {
    MutexLock lock(&mu_);
    return captured_;
  }

 private:
  void Mark(Interval* interval, absl::Time begin, absl::Time end) {
    MutexLock lock(&mu_);
    interval->first = std::min(interval->first, begin);
    interval->last = std::max(interval->last, end);
    ++interval->count;
  }
  ArtifactAccess* inner_;
  mutable Mutex mu_;
  Interval staged_ ABSL_GUARDED_BY(mu_);
  Interval captured_ ABSL_GUARDED_BY(mu_);
};

// Spans of one execution on the task's track: t0 the executor is called,
// t1 it returned (started), t2 the execution ended.
void TraceExecution(TraceRecorder* trace, int track, const TimedAccess& access,
                    absl::Time t0, absl::Time t1, absl::Time t2) {
  TimedAccess::Interval in = access.staged();
  TimedAccess::Interval out = access.captured();
  absl::Time started = t0;
  if (in.count > 0 && in.first >= t0 && in.last <= t1) {
    // Workspace creation before the first input counts as staging.
    trace->Span(track, "stage inputs", t0, in.last,
                {{"inputs", absl::StrCat(in.count)}});
    started = in.last;
  }
  trace->Span(track, "sandbox start", started, t1);
  absl::Time command_end = t2;
  if (out.count > 0 && out.first >= t1 && out.last <= t2) {
    command_end = out.first;
    trace->Span(track, "stash outputs", out.first, out.last,
                {{"outputs", absl::StrCat(out.count)}});
    trace->Span(track, "workspace cleanup", out.last, t2);
  }
  trace->Span(track, "command", t1, command_end);
}

}  // namespace

AttemptOutcome ExecuteRun(
    const KindCall& call, const TaskKey& key,
    const std::vector<std::pair<std::string, std::string>>& inputs,
    std::string* log_path) {
  const v1::Task& task = call.task;
  const TaskRunnerContext& ctx = call.env->ctx();
  // The executor makes the workspace (under <store>/work/<run>/) and moves
  // the artifacts through the engine's store, beneath the workspace and
  // never following a symlink (engine/exec/host_staging.h).
  HostStaging staging(ctx.artifacts);
  TimedAccess timed(&staging);
  HostWorkspaceOptions host;
  host.work_root = absl::StrCat(ctx.store_dir, "/work/", ctx.run_id);
  host.artifacts =
      ctx.trace != nullptr ? static_cast<ArtifactAccess*>(&timed) : &staging;
  host.archives = &staging;
  host.images = ctx.images;
  // Capturing the outputs and cleaning up hold no parallelism slot.
  host.command_done = [cancel = call.cancel] { cancel->CommandDone(); };

  RunLog log(call);
  v1::ExecRequest req = BuildRequest(call, inputs);
  absl::Time t0 = absl::Now();
  auto started =
      call.env->ExecutorFor(task)->StartStaged(req, log.sink(), host);
  if (!started.ok()) return Failed(started.status(), "executor: ", true);
  absl::Time t1 = absl::Now();
  std::unique_ptr<Execution> exec = std::move(*started);
  int cb = call.cancel->OnCancel([&exec] { exec->Cancel(); });
  v1::ExecResult result = exec->Wait();
  call.cancel->RemoveCallback(cb);
  if (ctx.trace != nullptr) {
    TraceExecution(ctx.trace, ctx.trace->TaskTrack(task.name()), timed, t0, t1,
                   absl::Now());
  }
  for (const std::string& warning : result.warnings()) {
    call.env->Warn(task.name(), call.attempt, warning);
  }
  *log_path = log.Finish();

  AttemptOutcome o = ToOutcome(task, result, key);
  if (o.state == v1::TASK_SUCCEEDED) TakeOutputs(task, result, &o);
  if (o.state == v1::TASK_SUCCEEDED) TakeResults(call, result, &o);
  return o;
}

}  // namespace kiln::kinds
