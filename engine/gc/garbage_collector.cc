#include "engine/gc/garbage_collector.h"

#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/content_store.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "engine/store/store.h"

namespace kiln::gc {
namespace {

bool IsFinalRun(v1::RunState s) {
  return s == v1::RUN_SUCCEEDED || s == v1::RUN_FAILED ||
         s == v1::RUN_CANCELLED || s == v1::RUN_TIMED_OUT;
}

// Tree (or blob) digests a run's tasks reference.
void AddRunRoots(const v1::Run& run, std::set<std::string>* roots) {
  for (const auto& t : run.tasks()) {
    for (const auto& [name, digest] : t.outputs()) roots->insert(digest);
    for (const auto& [key, value] : t.results()) {
      if (value.rfind("sha256:", 0) == 0) roots->insert(value);
    }
  }
}

// Live runs pin the cache entries they wrote (by run id) or read (the
// cache keys of their tasks): a gc with any retention never takes an entry
// from under a run in progress.
void AddRunPins(const v1::Run& run, store::CachePins* pins) {
  pins->run_ids.insert(run.id());
  for (const auto& t : run.tasks()) {
    if (!t.cache_key().empty()) pins->keys.insert(t.cache_key());
    pins->tasks.emplace(run.pipeline_name(), t.name());
  }
}

absl::Status CollectRoots(store::RunStore& runs, store::ActionCache& cache,
                          absl::Time since, int keep_deployments,
                          std::set<std::string>* roots,
                          std::set<std::string>* sources,
                          store::CachePins* pins) {
  std::string token;
  do {
    auto page = runs.ListRuns(store::RunFilter(), 1000, token);
    if (!page.ok()) return page.status();
    for (const auto& run : page->runs) {
      absl::Time created = absl::FromUnixSeconds(run.created().seconds());
      if (IsFinalRun(run.state()) && created < since) continue;
      auto full = runs.GetRun(run.id());
      if (full.ok()) AddRunRoots(*full, roots);
      if (!IsFinalRun(run.state())) {
        if (!full.ok()) return full.status();  // cannot tell what it pins
        AddRunPins(*full, pins);
      }
      auto source = runs.GetSourceDir(run.id());
      if (source.ok() && !source->empty()) sources->insert(*source);
    }
    token = page->next_page_token;
  } while (!token.empty());
  // Rollback targets: what the environments' recent deployments applied.
  auto deployed = runs.RetainedDeploymentDigests(keep_deployments);
  if (!deployed.ok()) return deployed.status();
  roots->insert(deployed->begin(), deployed->end());
  auto referenced = cache.ReferencedDigests(since, *pins);
  if (!referenced.ok()) return referenced.status();
  roots->insert(referenced->begin(), referenced->end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GcReport> CollectGarbage(const std::string& store_dir,
                                        const GcOptions& options) {
  auto store = store::Store::Open(store_dir);
  if (!store.ok()) return store.status();
  return CollectGarbage(**store, options);
}

absl::StatusOr<GcReport> CollectGarbage(const store::Store& store,
                                        const GcOptions& options) {
  store::RunStore* runs = &store.runs();
  store::ActionCache* cache = &store.cache();
  cas::ArtifactStore* artifacts = &store.artifacts();
  const cas::ContentStore& blobs = store.blobs();

  GcReport report;
  auto all = blobs.ListBlobs();
  if (!all.ok()) return all.status();
  report.blobs_before = all->size();
  for (const auto& d : *all)
    report.bytes_before += std::max<int64_t>(0, d.size());
  int64_t bytes = report.bytes_before;

  absl::Duration keep = options.keep;
  absl::Time now = absl::Now();
  while (true) {
    std::set<std::string> roots;
    std::set<std::string> sources;
    store::CachePins pins;
    absl::Status s =
        CollectRoots(*runs, *cache, now - keep, options.keep_deployments,
                     &roots, &sources, &pins);
    if (!s.ok()) return s;
    // Sources unpacked for submitted runs (<store>/sources/*) live as long
    // as a retained or unfinished run uses them.
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator(store.SourcesDir(), ec)) {
      std::string path = entry.path().lexically_normal().string();
      if (sources.count(path)) continue;
      struct stat st;
      if (lstat(path.c_str(), &st) != 0 ||
          absl::FromUnixSeconds(st.st_mtim.tv_sec) > now - options.grace) {
        continue;
      }
      ++report.sources_deleted;
      if (!options.dry_run) std::filesystem::remove_all(path, ec);
    }
    // Artifact roots keep their archives.
    std::set<std::string> live = roots;
    auto listed = artifacts->ListArtifacts();
    if (!listed.ok()) return listed.status();
    for (const auto& [tree, archive] : *listed) {
      if (roots.count(tree.ToString())) live.insert(archive.ToString());
    }
    auto current = blobs.ListBlobs();
    if (!current.ok()) return current.status();
    for (const auto& d : *current) {
      if (live.count(d.ToString())) continue;
      struct stat st;
      if (stat(blobs.BlobPath(d).c_str(), &st) == 0 &&
          absl::FromUnixSeconds(st.st_mtim.tv_sec) > now - options.grace) {
        continue;  // fresh: maybe not recorded yet
      }
      if (!options.dry_run && !blobs.Remove(d).ok()) continue;
      ++report.blobs_deleted;
      report.bytes_deleted += std::max<int64_t>(0, d.size());
      bytes -= std::max<int64_t>(0, d.size());
    }
    // A dry run reports the entries it would remove (it used to say 0).
    auto removed = options.dry_run ? cache->CountOlderThan(now - keep, pins)
                                   : cache->RemoveOlderThan(now - keep, pins);
    if (removed.ok()) report.cache_entries_deleted += *removed;
    report.keep_used = keep;
    if (options.max_bytes <= 0 || bytes <= options.max_bytes ||
        keep <= absl::ZeroDuration() || options.dry_run) {
      break;
    }
    keep = keep < absl::Hours(1) ? absl::ZeroDuration() : keep / 2;
  }
  report.over_max = options.max_bytes > 0 && bytes > options.max_bytes;
  return report;
}

}  // namespace kiln::gc
