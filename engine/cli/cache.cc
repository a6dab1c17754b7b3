// `kiln cache explain RUN TASK | stats | gc`.
#include <cstdio>
#include <cstring>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/verb.h"
#include "engine/gc/garbage_collector.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "engine/store/store.h"

namespace kiln::cli {
namespace {

std::string HumanBytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return absl::StrFormat("%.0f %s", v, units[u]);
  return absl::StrFormat("%.1f %s", v, units[u]);
}

// "10G", "512Mi", "1000" -> bytes.
bool ParseSize(std::string text, int64_t* out) {
  text = absl::AsciiStrToLower(text);
  int64_t mult = 1;
  auto strip = [&](const char* suffix, int64_t m) {
    size_t n = std::strlen(suffix);
    if (text.size() > n && text.compare(text.size() - n, n, suffix) == 0) {
      text.resize(text.size() - n);
      mult = m;
      return true;
    }
    return false;
  };
  strip("ki", 1LL << 10) || strip("mi", 1LL << 20) || strip("gi", 1LL << 30) ||
      strip("ti", 1LL << 40) || strip("k", 1000) || strip("m", 1000000) ||
      strip("g", 1000000000LL) || strip("t", 1000000000000LL);
  int64_t n;
  if (!absl::SimpleAtoi(text, &n) || n < 0) return false;
  if (n > INT64_MAX / mult) return false;  // would overflow
  *out = n * mult;
  return true;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kiln: %s\n", std::string(s.message()).c_str());
  return kExitFailed;
}

const v1::TaskStatus* FindTask(const v1::Run& run, const std::string& name) {
  for (const auto& t : run.tasks()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::string Summary(const std::string& value_digest) {
  size_t sp = value_digest.find(' ');
  return sp == std::string::npos ? value_digest.substr(0, 12)
                                 : value_digest.substr(sp + 1);
}

// A task on `image: host` is keyed by argv[0] and /etc/os-release only:
// say so, since tools it reaches otherwise (through `sh -c`, PATH lookups
// in scripts, libraries) can change without changing the key.
void NoteHostMode(const std::vector<store::KeyComponent>& components) {
  for (const auto& c : components) {
    if (c.name == "platform" &&
        c.value_digest.find(";image=host") != std::string::npos) {
      std::printf(
          "host mode: tools not tracked (the key covers the command's "
          "argv[0] binary and /etc/os-release, not what it runs)\n");
      return;
    }
  }
}

int Explain(const store::Store& parts, const std::string& run_id,
            const std::string& task) {
  store::RunStore* runs = &parts.runs();
  store::ActionCache* cache = &parts.cache();
  auto run = runs->GetRun(run_id);
  if (!run.ok()) return Fail(run.status());
  const v1::TaskStatus* st = FindTask(*run, task);
  if (st == nullptr) {
    return Fail(absl::NotFoundError(
        absl::StrCat("run ", run_id, " has no task '", task, "'")));
  }
  if (st->cache_key().empty()) {
    std::printf(
        "%s has no cache key in run %s (state %s): it did not reach "
        "execution, or its kind is never memoized (deploy, stash, unstash) "
        "or it says cache: false\n",
        task.c_str(), run_id.c_str(), v1::TaskState_Name(st->state()).c_str());
    return kExitOk;
  }
  auto now = cache->Lookup(st->cache_key(), true);
  if (!now.ok()) return Fail(now.status());
  if (st->state() == v1::TASK_CACHED) {
    std::printf("hit: %s matched key %s", task.c_str(),
                st->cache_key().c_str());
    if (now->has_value())
      std::printf(" (recorded by run %s)", (*now)->run_id.c_str());
    std::printf("\n");
    if (now->has_value()) NoteHostMode((*now)->components);
    return kExitOk;
  }
  // The previous run of the same pipeline in which this task had a key.
  std::string token;
  absl::optional<store::ActionResult> before;
  std::string before_run;
  bool past_this = false;
  do {
    store::RunFilter filter;
    filter.pipeline_name = run->pipeline_name();
    auto page = runs->ListRuns(filter, 200, token);
    if (!page.ok()) return Fail(page.status());
    for (const auto& r : page->runs) {  // newest first
      if (r.id() == run_id) {
        past_this = true;
        continue;
      }
      if (!past_this) continue;
      auto full = runs->GetRun(r.id());
      if (!full.ok()) continue;
      const v1::TaskStatus* prev = FindTask(*full, task);
      if (prev == nullptr || prev->cache_key().empty()) continue;
      auto entry = cache->Lookup(prev->cache_key(), true);
      if (entry.ok() && entry->has_value()) {
        before = std::move(**entry);
        before_run = r.id();
        break;
      }
    }
    token = before.has_value() ? "" : page->next_page_token;
  } while (!token.empty());
  if (!before.has_value()) {
    std::printf("miss: no earlier run of %s in pipeline %s is recorded\n",
                task.c_str(), run->pipeline_name().c_str());
    if (now->has_value()) NoteHostMode((*now)->components);
    return kExitOk;
  }
  if (!now->has_value()) {
    std::printf(
        "miss: %s (%s) did not record its key components (it did not "
        "succeed); the previous key was %s from run %s\n",
        task.c_str(), v1::TaskState_Name(st->state()).c_str(),
        before->key.c_str(), before_run.c_str());
    NoteHostMode(before->components);
    return kExitOk;
  }
  if (before->key == st->cache_key()) {
    std::printf(
        "the key equals run %s's; the task executed because that result "
        "was missing or unusable then (e.g. collected outputs)\n",
        before_run.c_str());
    NoteHostMode((*now)->components);
    return kExitOk;
  }
  std::printf("miss: %s's key changed since run %s:\n", task.c_str(),
              before_run.c_str());
  for (const auto& c :
       store::DiffKeyComponents(before->components, (*now)->components)) {
    switch (c.kind) {
      case store::ComponentChange::Kind::kChanged:
        std::printf("  %s changed: %s -> %s\n", c.name.c_str(),
                    Summary(c.old_digest).c_str(),
                    Summary(c.new_digest).c_str());
        break;
      case store::ComponentChange::Kind::kAdded:
        std::printf("  %s added: %s\n", c.name.c_str(),
                    Summary(c.new_digest).c_str());
        break;
      case store::ComponentChange::Kind::kRemoved:
        std::printf("  %s removed (was %s)\n", c.name.c_str(),
                    Summary(c.old_digest).c_str());
        break;
    }
  }
  NoteHostMode((*now)->components);
  return kExitOk;
}

int Stats(const store::Store& st, const std::string& store_dir) {
  cas::ArtifactStore* artifacts = &st.artifacts();
  auto blobs = artifacts->blobs().ListBlobs();
  if (!blobs.ok()) return Fail(blobs.status());
  int64_t bytes = 0;
  for (const auto& d : *blobs) bytes += std::max<int64_t>(0, d.size());
  auto listed = artifacts->ListArtifacts();
  store::RunStore* runs = &st.runs();
  std::map<v1::RunState, int> by_state;
  int total = 0;
  std::string token;
  do {
    auto page = runs->ListRuns(store::RunFilter(), 1000, token);
    if (!page.ok()) return Fail(page.status());
    for (const auto& r : page->runs) {
      ++by_state[r.state()];
      ++total;
    }
    token = page->next_page_token;
  } while (!token.empty());
  std::printf("store:     %s\n", store_dir.c_str());
  std::printf("blobs:     %zu (%s)\n", blobs->size(),
              HumanBytes(bytes).c_str());
  std::printf("artifacts: %zu\n", listed.ok() ? listed->size() : 0);
  std::printf("runs:      %d", total);
  for (const auto& [state, n] : by_state) {
    std::printf(" %s=%d", v1::RunState_Name(state).c_str(), n);
  }
  std::printf("\n");
  return kExitOk;
}

int CacheVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln cache explain RUN TASK | kiln cache stats | kiln cache gc "
      "[--keep-days N] [--max-size S] [--dry-run]   (all: [--store DIR])");
  args.Flag("store", "store directory (default $KILN_STORE or ~/.cache/kiln)");
  args.Flag("keep-days",
            "gc: keep what runs of the last N days use (default 14)");
  args.Flag("max-size", "gc: shrink retention until the store fits (e.g. 10G)");
  args.Bool("dry-run", "gc: report what would be deleted, delete nothing");
  int code;
  if (!args.Parse(argv, &code)) return code;
  const auto& pos = args.positionals();
  if (pos.empty()) return args.UsageError("expected explain, stats or gc");
  auto store_dir = cas::ResolveStoreDir(args.Get("store"));
  if (!store_dir.ok()) return Fail(store_dir.status());
  if (pos[0] != "explain" && pos[0] != "stats" && pos[0] != "gc") {
    return args.UsageError(
        absl::StrCat("unknown cache command '", pos[0], "'"));
  }
  // Every part of the store, opened once for the verb.
  auto st = store::Store::Open(*store_dir);
  if (!st.ok()) return Fail(st.status());
  if (pos[0] == "explain") {
    if (pos.size() != 3) return args.UsageError("explain takes RUN TASK");
    return Explain(**st, pos[1], pos[2]);
  }
  if (pos[0] == "stats") {
    if (pos.size() != 1) return args.UsageError("stats takes no arguments");
    return Stats(**st, *store_dir);
  }
  if (pos[0] == "gc") {
    if (pos.size() != 1) return args.UsageError("gc takes no arguments");
    gc::GcOptions options;
    int64_t days = 14;
    if (absl::Status s = args.IntFlag("keep-days", 0, 36500, &days); !s.ok()) {
      return args.UsageError(std::string(s.message()));
    }
    options.keep = absl::Hours(24) * days;
    if (args.Has("max-size") &&
        !ParseSize(args.Get("max-size"), &options.max_bytes)) {
      return args.UsageError("--max-size must be a size like 500M or 10Gi");
    }
    options.dry_run = args.Has("dry-run");
    auto report = gc::CollectGarbage(**st, options);
    if (!report.ok()) return Fail(report.status());
    std::printf(
        "%s %lld of %lld blobs (%s of %s), %lld cache entries, %lld "
        "sources%s\n",
        options.dry_run ? "would delete" : "deleted",
        static_cast<long long>(report->blobs_deleted),
        static_cast<long long>(report->blobs_before),
        HumanBytes(report->bytes_deleted).c_str(),
        HumanBytes(report->bytes_before).c_str(),
        static_cast<long long>(report->cache_entries_deleted),
        static_cast<long long>(report->sources_deleted),
        report->over_max
            ? "; still above --max-size (live runs and fresh blobs "
              "are never deleted)"
            : "");
    return kExitOk;
  }
  return args.UsageError(absl::StrCat("unknown cache command '", pos[0], "'"));
}

}  // namespace

KILN_CLI_VERB(cache, "cache",
              "explain cache misses, show stats, collect garbage", CacheVerb);

}  // namespace kiln::cli
