#include "engine/run_replay.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "engine/cas/digest.h"
#include "engine/keys/task_key.h"
#include "engine/kinds/kinds.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/substitute.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace kiln {

namespace {

constexpr char kReplayScheme[] = "kiln whole-run replay 1";

// Length-prefixed, so that no two sequences of fields hash alike (as a
// kind's ReplayPlatformChoice writes its fields).
void Field(std::string* out, absl::string_view value) {
  absl::StrAppend(out, value.size(), ":", value, ";");
}

// A key computed by this kiln for a fixed task through substitution: it
// changes when the key scheme or the substitution does, and with it every
// fingerprint (a replay recorded by another kiln is never used).
std::string KeySchemeProbe() {
  v1::Task task;
  task.set_name("probe");
  task.mutable_run()->add_command("${params.p}");
  task.mutable_run()->add_command("${trigger.branch}");
  pipeline::SubstitutionContext subst;
  subst.params["p"] = "value";
  subst.trigger.set_branch("main");
  auto resolved = pipeline::SubstituteTask(task, subst);
  if (!resolved.ok()) return "unresolved";
  TaskKeyInputs in;
  in.task = &*resolved;
  in.input_digests = {{"source", "sha256:0"}};
  in.platform = "probe";
  return ComputeTaskKey(in).key;
}

// Whether the roots decide the task's key (see run_replay.h); if so, the
// fields that choose its platform (its kind says which).
std::optional<std::string> PlatformChoice(const v1::Task& task) {
  if (task.has_approval() || (task.has_cache() && !task.cache())) {
    return std::nullopt;
  }
  if (task.has_when() && pipeline::DependsOnResults(task.when())) {
    return std::nullopt;
  }
  const kinds::Kind* kind = kinds::Find(task);
  if (kind == nullptr || !kind->Facts(task).memoizable) return std::nullopt;
  absl::optional<std::string> choice = kind->ReplayPlatformChoice(task);
  if (!choice.has_value()) return std::nullopt;
  return *std::move(choice);
}

// The records' archives as the artifact store checks them (views into
// `archives`).
std::vector<cas::ArtifactStore::RecordedArchive> Recorded(
    const std::vector<store::ReplayArchive>& archives) {
  std::vector<cas::ArtifactStore::RecordedArchive> out;
  out.reserve(archives.size());
  for (const store::ReplayArchive& a : archives) {
    out.push_back({a.tree, a.archive, a.size});
  }
  return out;
}

// Whether every archive is still indexed and present (HasIndexedArchives),
// in parts enough for the side thread to take some (kMinParallel).
bool ArchivesPresent(
    const TaskRunnerContext& ctx,
    const std::vector<cas::ArtifactStore::RecordedArchive>& entries,
    const absl::flat_hash_set<std::string>& unchanged, SideThread* side) {
  const size_t parts = entries.size() < 256 ? 1 : SideThread::kMinParallel;
  const size_t per_part = (entries.size() + parts - 1) / parts;
  std::atomic<bool> present{true};
  auto check = [&](size_t part) {
    absl::Span<const cas::ArtifactStore::RecordedArchive> all(entries);
    auto mine = all.subspan(std::min(all.size(), part * per_part), per_part);
    if (!ctx.artifacts->HasIndexedArchives(mine, unchanged)) present = false;
  };
  if (side != nullptr) {
    side->ForEach(parts, check);
  } else {
    for (size_t part = 0; part < parts; ++part) check(part);
  }
  return present.load();
}

}  // namespace

std::optional<std::string> ReplayFingerprint(const PlannedRun& planned,
                                             const v1::Trigger& trigger,
                                             const TaskRunnerContext& ctx) {
  const v1::Pipeline& pipeline = *planned.pipeline;
  if (ctx.run_store == nullptr || ctx.action_cache == nullptr ||
      ctx.artifacts == nullptr || ctx.hmac_key.empty() ||
      pipeline.finally_size() > 0 || planned.plan.order.empty()) {
    return std::nullopt;
  }
  // One platform per distinct choice (a 10,000-task graph has a handful).
  kinds::HostPlatform host;
  std::map<std::string, std::string> platforms;
  absl::flat_hash_map<std::string, bool> seen;
  for (const pipeline::PlannedTask& p : planned.plan.order) {
    if (p.skipped || p.is_finally) return std::nullopt;
    std::optional<std::string> choice = PlatformChoice(*p.task);
    if (!choice.has_value()) return std::nullopt;
    if (!seen.emplace(*choice, true).second) continue;
    Executor* executor =
        !ctx.executors.empty() ? ctx.executors.For(*p.task) : ctx.executor;
    if (executor == nullptr) return std::nullopt;
    platforms[*choice] = host.For(*executor, *p.task);
  }
  std::string data;
  Field(&data, kReplayScheme);
  Field(&data, KeySchemeProbe());
  // The SHA-256 of the pipeline's deterministic serialization: as the run
  // store computed it for a submitted run, else (a resumed run) here.
  if (!planned.pipeline_digest.empty()) {
    Field(&data, planned.pipeline_digest);
  } else {
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      pipeline.SerializeToCodedStream(&coded);
    }
    Field(&data, cas::Digest::Of(bytes).Hex());
  }
  {
    std::string bytes;
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    trigger.SerializeToCodedStream(&coded);
    coded.Trim();
    Field(&data, bytes);
  }
  for (const auto& [name, value] : planned.plan.params) {
    Field(&data, name);
    Field(&data, value);
  }
  Field(&data, ctx.source_digest);
  for (const auto& [choice, platform] : platforms) {
    Field(&data, choice);
    Field(&data, platform);
  }
  // On base/sha256 (SHA-NI where there is one): a warm run never loads
  // OpenSSL.
  return HexHmacSha256(ctx.hmac_key, data);
}

std::shared_ptr<const store::ReplaySource> UsableReplaySource(
    const std::string& fingerprint, const PlannedRun& planned,
    const TaskRunnerContext& ctx, SideThread* side,
    std::vector<store::ReplayShardStamp>* refreshed_stamps) {
  refreshed_stamps->clear();
  TraceRecorder* trace = ctx.trace;
  const int track = trace != nullptr ? trace->Track("run") : 0;
  ScopedSpan find(trace, track, "find replay source");
  auto found = ctx.run_store->FindReplaySource(fingerprint);
  find.End();
  if (!found.ok() || !found->has_value()) return nullptr;
  const auto& [source, epoch] = **found;
  if (static_cast<size_t>(source->tasks.size()) != planned.plan.order.size()) {
    return nullptr;
  }
  auto now = ctx.action_cache->Epoch();
  if (!now.ok() || *now != epoch) return nullptr;
  ScopedSpan presence(trace, track, "outputs present");
  std::vector<cas::ArtifactStore::ShardStamp> stamps;
  stamps.reserve(source->stamps.size());
  for (const store::ReplayShardStamp& st : source->stamps) {
    stamps.push_back({st.shard, st.ino, st.mtime_ns, st.ctime_ns});
  }
  absl::flat_hash_set<std::string> unchanged =
      ctx.artifacts->UnchangedShards(stamps);
  const std::vector<cas::ArtifactStore::RecordedArchive> entries =
      Recorded(source->archives);
  // Shards to be read in full are stamped first, so that the next replay
  // need not read them again.
  std::vector<std::string> changed;
  for (std::string& shard : ctx.artifacts->ShardsOf(entries)) {
    if (!unchanged.contains(shard)) changed.push_back(std::move(shard));
  }
  std::vector<cas::ArtifactStore::ShardStamp> fresh;
  if (!changed.empty()) {
    fresh = ctx.artifacts->ShardStamps(changed, absl::Seconds(2));
  }
  if (!ArchivesPresent(ctx, entries, unchanged, side)) return nullptr;
  if (!fresh.empty()) {
    for (const auto& st : source->stamps) {
      if (unchanged.contains(st.shard)) refreshed_stamps->push_back(st);
    }
    for (const auto& st : fresh) {
      refreshed_stamps->push_back({st.shard, st.ino, st.mtime_ns, st.ctime_ns});
    }
  }
  return source;
}

absl::StatusOr<bool> RecordReplaySource(
    const std::string& fingerprint, const v1::Run& run,
    const std::vector<std::string>& finish_order,
    const TaskRunnerContext& ctx) {
  // The run's statuses are recorded in place: a copy of 10,000 of them
  // (and of their action results, looked up all at once) was ~15 MB of a
  // cold run's peak memory.
  store::ReplaySourceParts source;
  source.run_id = run.id();
  std::vector<const v1::TaskStatus*> tasks;
  tasks.reserve(static_cast<size_t>(run.tasks_size()));
  absl::flat_hash_map<absl::string_view, uint32_t> index;
  index.reserve(static_cast<size_t>(run.tasks_size()));
  for (const v1::TaskStatus& t : run.tasks()) {
    if ((t.state() != v1::TASK_SUCCEEDED && t.state() != v1::TASK_CACHED) ||
        t.cache_key().empty()) {
      return false;
    }
    index[t.name()] = static_cast<uint32_t>(tasks.size());
    tasks.push_back(&t);
  }
  if (finish_order.size() != tasks.size()) return false;
  source.order.reserve(tasks.size());
  for (const std::string& name : finish_order) {
    auto it = index.find(name);
    if (it == index.end()) return false;
    source.order.push_back(it->second);
  }
  // The epoch first: an entry removed after it was read changes it.
  auto epoch = ctx.action_cache->Epoch();
  if (!epoch.ok()) return epoch.status();
  constexpr size_t kLookupBatch = 1024;
  std::vector<std::string> keys;
  for (size_t from = 0; from < tasks.size(); from += kLookupBatch) {
    const size_t to = std::min(tasks.size(), from + kLookupBatch);
    keys.clear();
    for (size_t i = from; i < to; ++i) keys.push_back(tasks[i]->cache_key());
    auto entries = ctx.action_cache->LookupMany(keys);
    if (!entries.ok()) return entries.status();
    for (size_t i = from; i < to; ++i) {
      const absl::optional<store::ActionResult>& e = (*entries)[i - from];
      const v1::TaskStatus& t = *tasks[i];
      if (!e.has_value() || e->exit_code != t.exit_code() ||
          e->outputs.size() != static_cast<size_t>(t.outputs_size()) ||
          e->results.size() != static_cast<size_t>(t.results_size())) {
        return false;
      }
      for (const auto& [k, v] : t.results()) {
        auto r = e->results.find(k);
        if (r == e->results.end() || r->second != v) return false;
      }
      for (const auto& [artifact, tree] : t.outputs()) {
        auto o = e->outputs.find(artifact);
        auto a = e->archives.find(artifact);
        if (o == e->outputs.end() || o->second != tree ||
            a == e->archives.end()) {
          return false;
        }
        source.archives.push_back(
            store::ReplayArchive{tree, a->second.digest, a->second.size});
      }
    }
  }
  // The shards as they are now, then every archive checked in full: a
  // shard whose stamp is unchanged later holds what was checked.
  const std::vector<cas::ArtifactStore::RecordedArchive> archives =
      Recorded(source.archives);
  for (const auto& st : ctx.artifacts->ShardStamps(
           ctx.artifacts->ShardsOf(archives), absl::Seconds(2))) {
    source.stamps.push_back(
        store::ReplayShardStamp{st.shard, st.ino, st.mtime_ns, st.ctime_ns});
  }
  if (!ArchivesPresent(ctx, archives, {}, nullptr)) return false;
  KILN_RETURN_IF_ERROR(
      ctx.run_store->RecordReplaySource(fingerprint, tasks, source, *epoch));
  return true;
}

}  // namespace kiln
