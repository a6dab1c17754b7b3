#include "engine/run/task_runner.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/trace.h"
#include "engine/keys/task_key.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/memoizer.h"
#include "engine/kinds/outcome.h"
#include "engine/pipeline/condition.h"
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
  const int track =
      ctx.trace != nullptr ? ctx.trace->TaskTrack(task.name()) : 0;
  // The attempt number is durable before the attempt does anything, so a
  // crash anywhere below never lets a resume reuse it (run_store.h).
  if (ctx.run_store != nullptr) {
    ScopedSpan span(ctx.trace, track, "reserve attempt");
    absl::Status reserved =
        ctx.run_store->ReserveAttempt(ctx.run_id, task.name(), attempt);
    if (!reserved.ok()) {
      return Failed(reserved, absl::StrCat("recording attempt ", attempt, ": "),
                    true);
    }
  }
  if (std::optional<std::string> skip = SkippedByResults(task, finished)) {
    return Outcome(v1::TASK_SKIPPED, *std::move(skip), false);
  }
  v1::Task resolved;
  v1::Task key_view;
  {
    ScopedSpan span(ctx.trace, track, "resolve");
    absl::Status s = Resolve(task, finished, &resolved, &key_view);
    if (!s.ok()) return Failed(s);
  }

  const kinds::Kind* kind = kinds::Find(task);
  if (kind == nullptr) return Failed("task has no kind");
  if (auto refusal = kind->Unsupported(resolved, ctx.capabilities)) {
    if (ctx.skip_unsupported) return Outcome(v1::TASK_SKIPPED, refusal->reason);
    return Failed(absl::StrCat(refusal->reason,
                               " (set options.unsupported: skip to skip it)"));
  }
  kinds::KindCall call{resolved, key_view, attempt, finished, cancel, &env_};
  return RecordOutputs(task, kind->Execute(call));
}

std::optional<std::string> EngineTaskRunner::SkippedByResults(
    const v1::Task& task,
    const std::map<std::string, v1::TaskStatus>& finished) const {
  if (!task.has_when() || !pipeline::DependsOnResults(task.when())) {
    return std::nullopt;
  }
  const TaskRunnerContext& ctx = env_.ctx();
  // As the plan evaluates conditions: over the resolved params.
  v1::Trigger trigger = ctx.substitution.trigger;
  trigger.mutable_params()->clear();
  for (const auto& [name, value] : ctx.substitution.params) {
    (*trigger.mutable_params())[name] = value;
  }
  absl::flat_hash_set<std::string> secrets;
  for (const auto& [name, value] : ctx.secrets) secrets.insert(name);
  pipeline::TaskResultValues results;
  for (const auto& [name, status] : finished) {
    results[name].insert(status.results().begin(), status.results().end());
  }
  pipeline::ConditionResult r =
      pipeline::EvaluateCondition(task.when(), trigger, secrets, &results);
  if (r.holds) return std::nullopt;
  return r.reason;
}

absl::Status EngineTaskRunner::Resolve(
    const v1::Task& task, const std::map<std::string, v1::TaskStatus>& finished,
    v1::Task* resolved, v1::Task* key_view) const {
  const TaskRunnerContext& ctx = env_.ctx();
  pipeline::SubstitutionContext subst = ctx.substitution;
  for (const auto& [name, status] : finished) {
    for (const auto& [k, v] : status.results()) {
      subst.task_outputs[name][k] = v;
    }
  }
  auto r = pipeline::SubstituteTask(task, subst);
  if (!r.ok()) return r.status();
  if (ctx.secrets.empty()) {
    // No secret params: the key view is the resolved task.
    *key_view = *r;
    *resolved = *std::move(r);
    return absl::OkStatus();
  }
  // The key sees secrets only as HMACs.
  pipeline::SubstitutionContext key_subst = std::move(subst);
  for (const auto& [name, value] : ctx.secrets) {
    key_subst.params[name] = HmacToken(ctx.hmac_key, value);
  }
  auto k = pipeline::SubstituteTask(task, key_subst);
  if (!k.ok()) return k.status();
  *resolved = *std::move(r);
  *key_view = *std::move(k);
  return absl::OkStatus();
}

std::vector<std::optional<AttemptOutcome>> EngineTaskRunner::TryCached(
    const std::vector<ReadyTask>& ready) {
  std::vector<std::optional<AttemptOutcome>> out(ready.size());
  const TaskRunnerContext& ctx = env_.ctx();
  if (ctx.action_cache == nullptr || ctx.artifacts == nullptr) return out;
  TraceRecorder* trace = ctx.trace;
  // The tasks whose key is known without running anything, worked out on
  // this thread and the side thread (KindEnv and the kinds are
  // thread-safe; each task's slot is written by one of them).
  std::vector<int> tracks(ready.size(), 0);
  if (trace != nullptr) {  // in order: track numbers stay deterministic
    for (size_t i = 0; i < ready.size(); ++i) {
      tracks[i] = trace->TaskTrack(ready[i].task->name());
    }
  }
  std::vector<absl::optional<std::string>> key_of(ready.size());
  side_.ForEach(ready.size(), [&](size_t i) {
    const v1::Task& task = *ready[i].task;
    // A task its results-dependent `when` skips is RunAttempt's to report.
    if (SkippedByResults(task, ready[i].finished).has_value()) return;
    ScopedSpan span(trace, tracks[i], "key");
    v1::Task resolved;
    v1::Task key_view;
    // Whatever fails here fails the same way in RunAttempt, which reports
    // it: such a task is simply not a candidate.
    if (!Resolve(task, ready[i].finished, &resolved, &key_view).ok()) return;
    const kinds::Kind* kind = kinds::Find(task);
    if (kind == nullptr || kind->Unsupported(resolved, ctx.capabilities)) {
      return;
    }
    kinds::KindCall call{resolved,          key_view, ready[i].attempt,
                         ready[i].finished, nullptr,  &env_};
    absl::optional<TaskKey> key = kinds::ProbeKey(*kind, call);
    if (key.has_value()) key_of[i] = std::move(key->key);
  });
  std::vector<size_t> candidates;
  std::vector<std::string> keys;
  for (size_t i = 0; i < ready.size(); ++i) {
    if (!key_of[i].has_value()) continue;
    candidates.push_back(i);
    keys.push_back(*std::move(key_of[i]));
  }
  if (candidates.empty()) return out;

  absl::Time lookup_begin = absl::Now();
  auto found = ctx.action_cache->LookupMany(keys);
  if (!found.ok()) return out;  // the workers look up (and report) again
  // Each hit's outputs must still be in the store: file reads and stats,
  // shared with the side thread (this thread is the run's critical path).
  side_.ForEach(candidates.size(), [&](size_t c) {
    if (!(*found)[c].has_value()) return;
    absl::optional<AttemptOutcome> hit =
        kinds::UsableHit(ctx, keys[c], *(*found)[c]);
    if (hit.has_value()) out[candidates[c]] = *std::move(hit);
  });
  absl::Time lookup_end = absl::Now();
  if (trace != nullptr) {
    std::string batch = absl::StrCat(candidates.size());
    for (size_t i : candidates) {
      trace->Span(tracks[i], "cache lookup", lookup_begin, lookup_end,
                  {{"batch", batch}});
    }
  }
  // Nothing is recorded here: each hit's TASK_CACHED event carries its key,
  // outputs and results, and records them with itself (AppendEvents).
  return out;
}

AttemptOutcome EngineTaskRunner::RecordOutputs(const v1::Task& task,
                                               AttemptOutcome out) {
  const TaskRunnerContext& ctx = env_.ctx();
  // A hit (TASK_CACHED) is recorded by its event, which carries its key,
  // outputs and results (RunStore::AppendEvents).
  if (out.state != v1::TASK_SUCCEEDED || ctx.run_store == nullptr) {
    return out;
  }
  ScopedSpan span(ctx.trace,
                  ctx.trace != nullptr ? ctx.trace->TaskTrack(task.name()) : 0,
                  "record (run)");
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
