#include "engine/kinds/run_exec.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/run_defaults.h"
#include "engine/kinds/run_log.h"
#include "engine/kinds/run_stage.h"
#include "engine/kinds/workspace.h"

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

v1::ExecRequest BuildRequest(const KindCall& call,
                             const std::string& workspace) {
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
  req.set_workspace(workspace);
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

// Stashes the declared outputs (and the report) into `o`.
absl::optional<AttemptOutcome> CollectOutputs(const KindCall& call,
                                              const ScopedWorkDir& ws,
                                              AttemptOutcome* o) {
  cas::ArtifactStore* artifacts = call.env->ctx().artifacts;
  for (const auto& output : call.task.outputs()) {
    for (const auto& p : output.paths()) {
      absl::Status produced = CheckProduced(ws.fd(), p);
      if (!produced.ok()) {
        return Failed(absl::StrCat("output '", output.artifact(), "': path '",
                                   p, "' ", produced.message()));
      }
    }
    std::vector<std::string> paths(output.paths().begin(),
                                   output.paths().end());
    auto stashed = artifacts->StashPaths(ws.path(), paths);
    if (!stashed.ok()) {
      return Failed(stashed.status(), absl::StrCat("stashing output '",
                                                   output.artifact(), "': "));
    }
    o->outputs[output.artifact()] = stashed->tree.ToString();
  }
  const std::string& report = call.task.run().report();
  if (!report.empty()) {
    auto stashed = artifacts->StashPaths(ws.path(), {report});
    if (stashed.ok()) o->results["report"] = stashed->tree.ToString();
  }
  return absl::nullopt;
}

}  // namespace

AttemptOutcome ExecuteRun(
    const KindCall& call, const TaskKey& key,
    const std::vector<std::pair<std::string, std::string>>& inputs,
    std::string* log_path) {
  const v1::Task& task = call.task;
  const TaskRunnerContext& ctx = call.env->ctx();
  // A fresh workspace with the inputs unstashed. Everything in it is
  // task-made (other tasks' outputs, then this task's work): every engine
  // operation on it stays beneath its fd and never follows a symlink.
  ScopedWorkDir ws(call.env, task, call.attempt, ctx.keep_workspaces);
  absl::Status created = ws.Create();
  if (!created.ok()) return Failed(created, "creating workspace: ", true);
  for (int i = 0; i < task.inputs_size(); ++i) {
    absl::Status s = StageInput(ctx, ws, task.inputs(i), inputs[i].second);
    if (!s.ok()) return Failed(s);
  }

  RunLog log(call);
  v1::ExecRequest req = BuildRequest(call, ws.path());
  auto started = call.env->ExecutorFor(task)->Start(req, log.sink());
  if (!started.ok()) return Failed(started.status(), "executor: ", true);
  std::unique_ptr<Execution> exec = std::move(*started);
  int cb = call.cancel->OnCancel([&exec] { exec->Cancel(); });
  v1::ExecResult result = exec->Wait();
  call.cancel->RemoveCallback(cb);
  *log_path = log.Finish();

  AttemptOutcome o = ToOutcome(task, result, key);
  if (o.state != v1::TASK_SUCCEEDED) return o;
  if (auto failed = CollectOutputs(call, ws, &o)) return *failed;
  return o;
}

}  // namespace kiln::kinds
