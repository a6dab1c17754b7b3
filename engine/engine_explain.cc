// Engine::ExplainCacheKey (engine.h): why a task of a recorded run hit or
// missed the action cache, from the run store and the action cache's
// recorded key inputs.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "engine/engine.h"

namespace kiln {
namespace {

using Verdict = CacheExplanation::Verdict;

const v1::TaskStatus* FindTask(const v1::Run& run, const std::string& name) {
  for (const auto& t : run.tasks()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

// A key made for `image: host` says so in its platform input.
bool HostMode(const std::vector<store::KeyComponent>& inputs) {
  for (const auto& c : inputs) {
    if (c.name == "platform" &&
        c.value_digest.find(";image=host") != std::string::npos) {
      return true;
    }
  }
  return false;
}

struct Earlier {
  std::string run_id;
  store::ActionResult entry;
};

// The latest run of `run`'s pipeline older than `run` whose entry for
// `task` is still cached (with its key inputs).
absl::StatusOr<absl::optional<Earlier>> FindEarlier(store::RunStore& runs,
                                                    store::ActionCache& cache,
                                                    const v1::Run& run,
                                                    const std::string& task) {
  std::string token;
  bool past_this = false;
  do {
    store::RunFilter filter;
    filter.pipeline_name = run.pipeline_name();
    absl::StatusOr<store::RunPage> page = runs.ListRuns(filter, 200, token);
    if (!page.ok()) return page.status();
    for (const auto& r : page->runs) {  // newest first
      if (r.id() == run.id()) {
        past_this = true;
        continue;
      }
      if (!past_this) continue;
      absl::StatusOr<v1::Run> full = runs.GetRun(r.id());
      if (!full.ok()) continue;
      const v1::TaskStatus* prev = FindTask(*full, task);
      if (prev == nullptr || prev->cache_key().empty()) continue;
      auto entry = cache.Lookup(prev->cache_key(), true);
      if (entry.ok() && entry->has_value()) {
        return absl::optional<Earlier>(Earlier{r.id(), std::move(**entry)});
      }
    }
    token = page->next_page_token;
  } while (!token.empty());
  return absl::optional<Earlier>();
}

}  // namespace

absl::StatusOr<CacheExplanation> Engine::ExplainCacheKey(
    const std::string& run_id, const std::string& task) {
  store::RunStore& runs = store().runs();
  store::ActionCache& cache = store().cache();
  absl::StatusOr<v1::Run> run = runs.GetRun(run_id);
  if (!run.ok()) return run.status();
  const v1::TaskStatus* st = FindTask(*run, task);
  if (st == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("run ", run_id, " has no task '", task, "'"));
  }
  CacheExplanation out;
  out.run_id = run_id;
  out.task = task;
  out.pipeline_name = run->pipeline_name();
  out.state = st->state();
  out.key = st->cache_key();
  if (out.key.empty()) return out;  // kNoKey
  auto now = cache.Lookup(out.key, true);
  if (!now.ok()) return now.status();
  if (now->has_value()) {
    out.recorded_by_run = (*now)->run_id;
    out.inputs = (*now)->components;
  }
  out.host_tools_untracked = HostMode(out.inputs);
  if (st->state() == v1::TASK_CACHED) {
    out.verdict = Verdict::kHit;
    return out;
  }
  absl::StatusOr<absl::optional<Earlier>> earlier =
      FindEarlier(runs, cache, *run, task);
  if (!earlier.ok()) return earlier.status();
  if (!earlier->has_value()) {
    out.verdict = Verdict::kNoEarlierRun;
    return out;
  }
  out.previous_run = (*earlier)->run_id;
  out.previous_key = (*earlier)->entry.key;
  out.previous_inputs = (*earlier)->entry.components;
  if (!now->has_value()) {
    out.verdict = Verdict::kNotRecorded;
    out.host_tools_untracked = HostMode(out.previous_inputs);
    return out;
  }
  if (out.previous_key == out.key) {
    out.verdict = Verdict::kSameKey;
    return out;
  }
  out.verdict = Verdict::kChanged;
  out.changes = store::DiffKeyComponents(out.previous_inputs, out.inputs);
  return out;
}

}  // namespace kiln
