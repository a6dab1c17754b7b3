// `kiln cache explain RUN TASK | stats | gc`.
#include <cstdio>
#include <cstring>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/verb.h"
#include "engine/engine.h"

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

std::string Summary(const std::string& value_digest) {
  size_t sp = value_digest.find(' ');
  return sp == std::string::npos ? value_digest.substr(0, 12)
                                 : value_digest.substr(sp + 1);
}

// A task on `image: host` is keyed by argv[0] and /etc/os-release only:
// say so, since tools it reaches otherwise (through `sh -c`, PATH lookups
// in scripts, libraries) can change without changing the key.
void NoteHostMode(const CacheExplanation& e) {
  if (!e.host_tools_untracked) return;
  std::printf(
      "host mode: tools not tracked (the key covers the command's "
      "argv[0] binary and /etc/os-release, not what it runs)\n");
}

void PrintChanges(const CacheExplanation& e) {
  for (const auto& c : e.changes) {
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
}

int Explain(Engine& engine, const std::string& run_id,
            const std::string& task) {
  absl::StatusOr<CacheExplanation> e = engine.ExplainCacheKey(run_id, task);
  if (!e.ok()) return Fail(e.status());
  const char* name = task.c_str();
  using Verdict = CacheExplanation::Verdict;
  switch (e->verdict) {
    case Verdict::kNoKey:
      std::printf(
          "%s has no cache key in run %s (state %s): it did not reach "
          "execution, or its kind is never memoized (deploy, stash, unstash) "
          "or it says cache: false\n",
          name, run_id.c_str(), v1::TaskState_Name(e->state).c_str());
      return kExitOk;
    case Verdict::kHit:
      std::printf("hit: %s matched key %s", name, e->key.c_str());
      if (!e->recorded_by_run.empty()) {
        std::printf(" (recorded by run %s)", e->recorded_by_run.c_str());
      }
      std::printf("\n");
      break;
    case Verdict::kNoEarlierRun:
      std::printf("miss: no earlier run of %s in pipeline %s is recorded\n",
                  name, e->pipeline_name.c_str());
      break;
    case Verdict::kNotRecorded:
      std::printf(
          "miss: %s (%s) did not record its key components (it did not "
          "succeed); the previous key was %s from run %s\n",
          name, v1::TaskState_Name(e->state).c_str(), e->previous_key.c_str(),
          e->previous_run.c_str());
      break;
    case Verdict::kSameKey:
      std::printf(
          "the key equals run %s's; the task executed because that result "
          "was missing or unusable then (e.g. collected outputs)\n",
          e->previous_run.c_str());
      break;
    case Verdict::kChanged:
      std::printf("miss: %s's key changed since run %s:\n", name,
                  e->previous_run.c_str());
      PrintChanges(*e);
      break;
  }
  NoteHostMode(*e);
  return kExitOk;
}

int Stats(Engine& engine, const std::string& store_dir) {
  absl::StatusOr<StoreStats> stats = engine.GetStoreStats();
  if (!stats.ok()) return Fail(stats.status());
  std::printf("store:     %s\n", store_dir.c_str());
  std::printf("blobs:     %lld (%s)\n", static_cast<long long>(stats->blobs),
              HumanBytes(stats->blob_bytes).c_str());
  std::printf("artifacts: %lld\n", static_cast<long long>(stats->artifacts));
  std::printf("runs:      %lld", static_cast<long long>(stats->runs));
  for (const auto& [state, n] : stats->runs_by_state) {
    std::printf(" %s=%lld", v1::RunState_Name(state).c_str(),
                static_cast<long long>(n));
  }
  std::printf("\n");
  return kExitOk;
}

int CacheVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln cache explain RUN TASK | kiln cache stats | kiln cache gc "
      "[--keep-days N] [--keep-deployments N] [--max-size S] [--dry-run]   "
      "(all: [--store DIR])");
  args.Flag("store", "store directory (default $KILN_STORE or ~/.cache/kiln)");
  args.Flag("keep-days",
            "gc: keep what runs of the last N days use (default 14)");
  args.Flag("max-size", "gc: shrink retention until the store fits (e.g. 10G)");
  args.Bool("dry-run", "gc: report what would be deleted, delete nothing");
  args.Flag("keep-deployments",
            "gc: keep the manifests of each environment's last N "
            "deployments, for rollbacks (default 10)");
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
  // The store, through the facade, opened once for the verb.
  auto engine = Engine::OpenStore(*store_dir);
  if (!engine.ok()) return Fail(engine.status());
  if (pos[0] == "explain") {
    if (pos.size() != 3) return args.UsageError("explain takes RUN TASK");
    return Explain(**engine, pos[1], pos[2]);
  }
  if (pos[0] == "stats") {
    if (pos.size() != 1) return args.UsageError("stats takes no arguments");
    return Stats(**engine, *store_dir);
  }
  if (pos[0] == "gc") {
    if (pos.size() != 1) return args.UsageError("gc takes no arguments");
    gc::GcOptions options;
    int64_t days = 14;
    if (absl::Status s = args.IntFlag("keep-days", 0, 36500, &days); !s.ok()) {
      return args.UsageError(std::string(s.message()));
    }
    options.keep = absl::Hours(24) * days;
    int64_t deployments = options.keep_deployments;
    if (absl::Status s =
            args.IntFlag("keep-deployments", 0, 100000, &deployments);
        !s.ok()) {
      return args.UsageError(std::string(s.message()));
    }
    options.keep_deployments = static_cast<int>(deployments);
    if (args.Has("max-size") &&
        !ParseSize(args.Get("max-size"), &options.max_bytes)) {
      return args.UsageError("--max-size must be a size like 500M or 10Gi");
    }
    options.dry_run = args.Has("dry-run");
    auto report = (*engine)->CollectGarbage(options);
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
