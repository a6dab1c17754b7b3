#include "engine/run/task_runner.h"

#include "engine/keys/task_key.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/outcome.h"
#include "engine/pipeline/substitute.h"

namespace kiln {

using kinds::Failed;
using kinds::Outcome;

EngineTaskRunner::EngineTaskRunner(TaskRunnerContext context)
    : env_(std::move(context)) {}

AttemptOutcome EngineTaskRunner::RunAttempt(
    const v1::Task& task, int attempt,
    const std::map<std::string, v1::TaskStatus>& finished,
    CancelSignal* cancel) {
  const TaskRunnerContext& ctx = env_.ctx();
  // The attempt number is durable before the attempt does anything, so a
  // crash anywhere below never lets a resume reuse it (run_store.h).
  if (ctx.run_store != nullptr) {
    absl::Status reserved =
        ctx.run_store->ReserveAttempt(ctx.run_id, task.name(), attempt);
    if (!reserved.ok()) {
      return Failed(reserved, absl::StrCat("recording attempt ", attempt, ": "),
                    true);
    }
  }
  pipeline::SubstitutionContext subst = ctx.substitution;
  for (const auto& [name, status] : finished) {
    for (const auto& [k, v] : status.results()) {
      subst.task_outputs[name][k] = v;
    }
  }
  auto resolved = pipeline::SubstituteTask(task, subst);
  if (!resolved.ok()) return Failed(resolved.status());
  // The key sees secrets only as HMACs.
  pipeline::SubstitutionContext key_subst = subst;
  for (const auto& [name, value] : ctx.secrets) {
    key_subst.params[name] = HmacToken(ctx.hmac_key, value);
  }
  auto key_view = pipeline::SubstituteTask(task, key_subst);
  if (!key_view.ok()) return Failed(key_view.status());

  const kinds::Kind* kind = kinds::Find(task);
  if (kind == nullptr) return Failed("task has no kind");
  if (auto refusal = kind->Unsupported(*resolved, ctx.capabilities)) {
    return Outcome(v1::TASK_SKIPPED, refusal->reason);
  }
  kinds::KindCall call{*resolved, *key_view, attempt, finished, cancel, &env_};
  return RecordOutputs(task, kind->Execute(call));
}

AttemptOutcome EngineTaskRunner::RecordOutputs(const v1::Task& task,
                                               AttemptOutcome out) {
  const TaskRunnerContext& ctx = env_.ctx();
  if ((out.state != v1::TASK_SUCCEEDED && out.state != v1::TASK_CACHED) ||
      ctx.run_store == nullptr) {
    return out;
  }
  store::TaskOutputs rec;
  rec.cache_key = out.cache_key;
  rec.outputs = out.outputs;
  rec.results = out.results;
  absl::Status s = ctx.run_store->SetTaskOutputs(ctx.run_id, task.name(), rec);
  if (!s.ok()) {
    // Without the record a resumed run would lose what this task made.
    AttemptOutcome failed =
        Failed(s, "recording the task's outputs with the run: ");
    failed.cache_key = out.cache_key;
    return failed;
  }
  return out;
}

}  // namespace kiln
