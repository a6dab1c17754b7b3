#include "engine/kinds/run_exec.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/exec/host_staging.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/run_defaults.h"
#include "engine/kinds/run_log.h"
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
  HostWorkspaceOptions host;
  host.work_root = absl::StrCat(ctx.store_dir, "/work/", ctx.run_id);
  host.artifacts = &staging;
  host.archives = &staging;
  host.images = ctx.images;

  RunLog log(call);
  v1::ExecRequest req = BuildRequest(call, inputs);
  auto started =
      call.env->ExecutorFor(task)->StartStaged(req, log.sink(), host);
  if (!started.ok()) return Failed(started.status(), "executor: ", true);
  std::unique_ptr<Execution> exec = std::move(*started);
  int cb = call.cancel->OnCancel([&exec] { exec->Cancel(); });
  v1::ExecResult result = exec->Wait();
  call.cancel->RemoveCallback(cb);
  for (const std::string& warning : result.warnings()) {
    call.env->Warn(task.name(), call.attempt, warning);
  }
  *log_path = log.Finish();

  AttemptOutcome o = ToOutcome(task, result, key);
  if (o.state == v1::TASK_SUCCEEDED) TakeOutputs(task, result, &o);
  return o;
}

}  // namespace kiln::kinds
