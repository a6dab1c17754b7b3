#include "engine/kinds/memoizer.h"

#include "absl/strings/str_cat.h"
#include "engine/cas/digest.h"
#include "engine/kinds/outcome.h"

namespace kiln::kinds {
namespace {

// A cached result that is still usable (its artifacts are in the store).
absl::optional<store::ActionResult> Lookup(const TaskRunnerContext& ctx,
                                           const std::string& key) {
  auto hit = ctx.action_cache->Lookup(key);
  if (!hit.ok() || !hit->has_value()) return absl::nullopt;
  // Every output must still be in the store, or the hit is worthless. A
  // damaged index entry is dropped here, so the task runs again now
  // instead of its consumers failing in every run.
  for (const auto& [artifact, digest] : (*hit)->outputs) {
    auto d = cas::Digest::Parse(digest);
    if (!d.ok()) return absl::nullopt;
    if (!ctx.artifacts->VerifiedArchiveOf(*d).ok()) return absl::nullopt;
  }
  return std::move(**hit);
}

AttemptOutcome CachedOutcome(const std::string& key,
                             const store::ActionResult& hit) {
  AttemptOutcome o = Outcome(v1::TASK_CACHED, "cache hit");
  o.cache_key = key;
  o.exit_code = hit.exit_code;
  o.outputs = hit.outputs;
  o.results = hit.results;
  return o;
}

absl::Status Record(const TaskRunnerContext& ctx, const TaskKey& key,
                    const v1::Task& task, const AttemptOutcome& outcome,
                    const std::string& log_path) {
  store::ActionResult r;
  r.exit_code = outcome.exit_code;
  r.outputs = outcome.outputs;
  r.results = outcome.results;
  r.log_path = log_path;
  r.pipeline_name = ctx.pipeline_name;
  r.task_name = task.name();
  r.run_id = ctx.run_id;
  for (const auto& c : key.components) {
    r.components.push_back(
        store::KeyComponent{c.name, absl::StrCat(c.digest, " ", c.summary)});
  }
  return ctx.action_cache->Put(key.key, r);
}

}  // namespace

AttemptOutcome Memoize(const Kind& kind, const KindCall& call,
                       std::vector<std::pair<std::string, std::string>> inputs,
                       const MemoizedWork& work) {
  const TaskRunnerContext& ctx = call.env->ctx();
  bool cacheable = kind.Facts(call.task).memoizable &&
                   (!call.task.has_cache() || call.task.cache());
  TaskKeyInputs key_in;
  key_in.task = &call.key_view;
  key_in.input_digests = std::move(inputs);
  key_in.platform = call.env->Platform(call.task);
  TaskKey key = ComputeTaskKey(key_in);
  if (cacheable) {
    if (auto hit = Lookup(ctx, key.key)) return CachedOutcome(key.key, *hit);
  }
  std::string log_path;
  AttemptOutcome o = work(key, &log_path);
  if (o.state != v1::TASK_SUCCEEDED || !cacheable) return o;
  absl::Status recorded = Record(ctx, key, call.task, o, log_path);
  if (!recorded.ok()) {
    return Failed(recorded, "recording the result in the action cache: ");
  }
  return o;
}

}  // namespace kiln::kinds
