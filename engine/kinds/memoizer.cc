#include "engine/kinds/memoizer.h"

#include "absl/strings/str_cat.h"
#include "engine/cas/digest.h"
#include "engine/kinds/outcome.h"

namespace kiln::kinds {
namespace {

// Every output must still be in the store, or the hit is worthless. A
// damaged index entry is dropped here, so the task runs again now instead
// of its consumers failing in every run. An output whose verified archive
// the entry recorded costs one read of its index entry and one stat
// (HasIndexedArchive); anything else, or any difference, takes the full
// check.
bool OutputsPresent(const TaskRunnerContext& ctx,
                    const store::ActionResult& hit) {
  for (const auto& [artifact, digest] : hit.outputs) {
    auto d = cas::Digest::Parse(digest);
    if (!d.ok()) return false;
    auto recorded = hit.archives.find(artifact);
    if (recorded != hit.archives.end()) {
      auto archive = cas::Digest::Parse(recorded->second.digest);
      if (archive.ok()) {
        archive->set_size(recorded->second.size);
        if (ctx.artifacts->HasIndexedArchive(*d, *archive)) continue;
      }
    }
    if (!ctx.artifacts->VerifiedArchiveOf(*d).ok()) return false;
  }
  return true;
}

// A cached result that is still usable (its artifacts are in the store).
absl::optional<store::ActionResult> Lookup(const TaskRunnerContext& ctx,
                                           const std::string& key) {
  auto hit = ctx.action_cache->Lookup(key);
  if (!hit.ok() || !hit->has_value()) return absl::nullopt;
  if (!OutputsPresent(ctx, **hit)) return absl::nullopt;
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
  // Each output's archive, verified now (the task just stored it: its
  // by-archive record is fresh), so that later hits need not verify it.
  for (const auto& [artifact, digest] : outcome.outputs) {
    auto tree = cas::Digest::Parse(digest);
    if (!tree.ok()) continue;
    auto archive = ctx.artifacts->VouchedArchiveOf(*tree);
    if (!archive.ok() || archive->size() == cas::Digest::kUnknownSize) {
      continue;
    }
    r.archives[artifact] =
        store::OutputArchive{archive->ToString(), archive->size()};
  }
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

bool Cacheable(const Kind& kind, const v1::Task& task) {
  return kind.Facts(task).memoizable && (!task.has_cache() || task.cache());
}

// The one key computation of Memoize and ProbeKey.
TaskKey KeyOf(const KindCall& call,
              std::vector<std::pair<std::string, std::string>> inputs) {
  TaskKeyInputs key_in;
  key_in.task = &call.key_view;
  key_in.input_digests = std::move(inputs);
  key_in.platform = call.env->Platform(call.task);
  return ComputeTaskKey(key_in);
}

}  // namespace

absl::optional<TaskKey> ProbeKey(const Kind& kind, const KindCall& call) {
  if (!Cacheable(kind, call.task)) return absl::nullopt;
  auto inputs = kind.CacheInputs(call);
  if (!inputs.has_value()) return absl::nullopt;
  return KeyOf(call, *std::move(inputs));
}

absl::optional<AttemptOutcome> UsableHit(const TaskRunnerContext& ctx,
                                         const std::string& key,
                                         const store::ActionResult& hit) {
  if (!OutputsPresent(ctx, hit)) return absl::nullopt;
  return CachedOutcome(key, hit);
}

AttemptOutcome Memoize(const Kind& kind, const KindCall& call,
                       std::vector<std::pair<std::string, std::string>> inputs,
                       const MemoizedWork& work) {
  const TaskRunnerContext& ctx = call.env->ctx();
  TraceRecorder* trace = ctx.trace;
  const int track = trace != nullptr ? trace->TaskTrack(call.task.name()) : 0;
  bool cacheable = Cacheable(kind, call.task);
  ScopedSpan key_span(trace, track, "key");
  TaskKey key = KeyOf(call, std::move(inputs));
  key_span.End();
  if (cacheable) {
    ScopedSpan lookup_span(trace, track, "cache lookup");
    if (auto hit = Lookup(ctx, key.key)) return CachedOutcome(key.key, *hit);
  }
  std::string log_path;
  AttemptOutcome o = work(key, &log_path);
  if (o.state != v1::TASK_SUCCEEDED || !cacheable) return o;
  ScopedSpan record_span(trace, track, "record (action cache)");
  absl::Status recorded = Record(ctx, key, call.task, o, log_path);
  if (!recorded.ok()) {
    return Failed(recorded, "recording the result in the action cache: ");
  }
  return o;
}

}  // namespace kiln::kinds
