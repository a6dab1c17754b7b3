#include "engine/gc/garbage_collector.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/cas/artifact_store.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "gtest/gtest.h"

namespace kiln::gc {
namespace {

namespace fs = std::filesystem;

std::string Tmp(const std::string& name) {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

cas::StashResult StashText(const cas::ArtifactStore& store,
                           const std::string& dir, const std::string& text) {
  fs::create_directories(dir);
  std::ofstream(dir + "/f.txt") << text;
  auto r = store.Stash(dir);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

// Makes every blob look older than the grace period.
void AgeBlobs(const std::string& store) {
  for (const auto& e : fs::recursive_directory_iterator(store + "/cas")) {
    if (!e.is_regular_file()) continue;
    struct timeval tv[2] = {{time(nullptr) - 7200, 0},
                            {time(nullptr) - 7200, 0}};
    utimes(e.path().c_str(), tv);
  }
}

std::string RecordRun(store::RunStore& runs, const std::string& tree,
                      bool finish) {
  v1::Pipeline p;
  p.set_name("gc");
  p.add_tasks()->set_name("t");
  auto created = runs.CreateRun(p, v1::Trigger(), "", "");
  EXPECT_TRUE(created.ok());
  store::TaskOutputs out;
  out.outputs["a"] = tree;
  EXPECT_TRUE(runs.SetTaskOutputs(created->run_id, "t", out).ok());
  if (finish) {
    v1::RunEvent e;
    e.mutable_run_state()->set_state(v1::RUN_SUCCEEDED);
    EXPECT_TRUE(runs.AppendEvents(created->run_id, {e}).ok());
  }
  return created->run_id;
}

TEST(GarbageCollectorTest, KeepsReferencedAndFreshDeletesTheRest) {
  std::string store = Tmp("store1");
  auto artifacts = cas::ArtifactStore::Open(store);
  ASSERT_TRUE(artifacts.ok());
  auto kept = StashText(**artifacts, Tmp("a"), "kept");
  auto dropped = StashText(**artifacts, Tmp("b"), "dropped");
  {
    auto runs = store::RunStore::Open(store);
    ASSERT_TRUE(runs.ok());
    RecordRun(**runs, kept.tree.ToString(), true);
  }
  // Fresh blobs survive even when unreferenced.
  auto report = CollectGarbage(store, GcOptions());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->blobs_deleted, 0);

  AgeBlobs(store);
  report = CollectGarbage(store, GcOptions());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->blobs_deleted, 1);
  EXPECT_TRUE((*artifacts)->blobs().Has(kept.archive));
  EXPECT_FALSE((*artifacts)->blobs().Has(dropped.archive));
  EXPECT_TRUE((*artifacts)->Unstash(kept.tree, Tmp("out") + "/x").ok());
  EXPECT_FALSE((*artifacts)->Unstash(dropped.tree, Tmp("out2") + "/x").ok());
}

void RecordDeployment(store::RunStore& runs, const std::string& env,
                      const std::string& tree) {
  store::DeploymentRecord r;
  r.environment = env;
  r.namespace_name = "shop-" + env;
  r.task = "deploy";
  r.manifests_digest = tree;
  r.succeeded = true;
  EXPECT_TRUE(runs.RecordDeployment(r).ok());
}

// The manifests of an environment's newest keep_deployments deployments
// are rollback targets: kept whatever the retention window says.
TEST(GarbageCollectorTest, KeepsTheManifestsOfRecentDeployments) {
  std::string store = Tmp("store_deploy");
  auto artifacts = cas::ArtifactStore::Open(store);
  ASSERT_TRUE(artifacts.ok());
  auto v1 = StashText(**artifacts, Tmp("v1"), "kind: ConfigMap # v1");
  auto v2 = StashText(**artifacts, Tmp("v2"), "kind: ConfigMap # v2");
  auto v3 = StashText(**artifacts, Tmp("v3"), "kind: ConfigMap # v3");
  auto prod = StashText(**artifacts, Tmp("p1"), "kind: ConfigMap # prod");
  {
    auto runs = store::RunStore::Open(store);
    ASSERT_TRUE(runs.ok());
    RecordDeployment(**runs, "prod", prod.tree.ToString());
    RecordDeployment(**runs, "stage", v1.tree.ToString());
    RecordDeployment(**runs, "stage", v2.tree.ToString());
    RecordDeployment(**runs, "stage", v3.tree.ToString());
  }
  AgeBlobs(store);
  GcOptions options;
  options.keep = absl::ZeroDuration();  // no run retention at all
  options.keep_deployments = 2;
  auto report = CollectGarbage(store, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE((*artifacts)->blobs().Has(v1.archive));
  EXPECT_TRUE((*artifacts)->blobs().Has(v2.archive));
  EXPECT_TRUE((*artifacts)->blobs().Has(v3.archive));
  EXPECT_TRUE((*artifacts)->blobs().Has(prod.archive));
  EXPECT_TRUE((*artifacts)->Unstash(v2.tree, Tmp("out_v2") + "/x").ok());

  options.keep_deployments = 0;
  report = CollectGarbage(store, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE((*artifacts)->blobs().Has(v2.archive));
  EXPECT_FALSE((*artifacts)->blobs().Has(prod.archive));
}

TEST(GarbageCollectorTest, SizeTargetShrinksRetentionButNeverLiveRuns) {
  std::string store = Tmp("store2");
  auto artifacts = cas::ArtifactStore::Open(store);
  ASSERT_TRUE(artifacts.ok());
  auto finished = StashText(**artifacts, Tmp("c"), "finished run output");
  auto live = StashText(**artifacts, Tmp("d"), "live run output");
  {
    auto runs = store::RunStore::Open(store);
    ASSERT_TRUE(runs.ok());
    RecordRun(**runs, finished.tree.ToString(), true);
    RecordRun(**runs, live.tree.ToString(), false);  // still running
  }
  AgeBlobs(store);
  GcOptions options;
  options.max_bytes = 1;
  auto report = CollectGarbage(store, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE((*artifacts)->blobs().Has(finished.archive));
  EXPECT_TRUE((*artifacts)->blobs().Has(live.archive));
  EXPECT_TRUE(report->over_max);
  EXPECT_EQ(report->keep_used, absl::ZeroDuration());
}

TEST(GarbageCollectorTest, UnusedSubmittedSourcesAreDeleted) {
  std::string store = Tmp("store3");
  std::string used = store + "/sources/used";
  std::string unused = store + "/sources/unused";
  fs::create_directories(used);
  fs::create_directories(unused);
  {
    auto runs = store::RunStore::Open(store);
    ASSERT_TRUE(runs.ok());
    v1::Pipeline p;
    p.set_name("gc");
    p.add_tasks()->set_name("t");
    ASSERT_TRUE((*runs)->CreateRun(p, v1::Trigger(), used, "").ok());
  }
  for (const std::string& d : {used, unused}) {
    struct timeval tv[2] = {{time(nullptr) - 7200, 0},
                            {time(nullptr) - 7200, 0}};
    utimes(d.c_str(), tv);
  }
  auto report = CollectGarbage(store, GcOptions());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->sources_deleted, 1);
  EXPECT_TRUE(fs::exists(used));
  EXPECT_FALSE(fs::exists(unused));
}

// Records an action-cache entry whose outputs are `tree` and whose log is
// `log`, created `age` ago.
void RecordCacheEntry(const std::string& store, const std::string& key,
                      const std::string& tree, const std::string& log,
                      absl::Duration age) {
  auto cache = store::ActionCache::Open(store);
  ASSERT_TRUE(cache.ok()) << cache.status();
  store::ActionResult result;
  result.outputs["a"] = tree;
  result.log_digest = log;
  result.pipeline_name = "gc";
  result.task_name = "t";
  result.created = absl::Now() - age;
  ASSERT_TRUE((*cache)->Put(key, result).ok());
}

TEST(GarbageCollectorTest, ActionCacheRootsKeepOutputsAndLogsUntilExpired) {
  std::string store = Tmp("store4");
  auto artifacts = cas::ArtifactStore::Open(store);
  ASSERT_TRUE(artifacts.ok());
  auto fresh_out = StashText(**artifacts, Tmp("e"), "fresh cached output");
  auto old_out = StashText(**artifacts, Tmp("f"), "expired cached output");
  auto fresh_log = (*artifacts)->blobs().Put("fresh log\n");
  auto old_log = (*artifacts)->blobs().Put("expired log\n");
  ASSERT_TRUE(fresh_log.ok() && old_log.ok());
  const std::string fresh_key = "sha256:" + std::string(64, '1');
  const std::string old_key = "sha256:" + std::string(64, '2');
  RecordCacheEntry(store, fresh_key, fresh_out.tree.ToString(),
                   fresh_log->ToString(), absl::Hours(1));
  RecordCacheEntry(store, old_key, old_out.tree.ToString(), old_log->ToString(),
                   absl::Hours(24 * 30));
  AgeBlobs(store);
  auto report = CollectGarbage(store, GcOptions());  // keeps 14 days
  ASSERT_TRUE(report.ok()) << report.status();
  // The fresh entry's outputs and log are roots; the expired entry goes,
  // with everything only it referenced.
  EXPECT_TRUE((*artifacts)->blobs().Has(fresh_out.archive));
  EXPECT_TRUE((*artifacts)->blobs().Has(*fresh_log));
  EXPECT_FALSE((*artifacts)->blobs().Has(old_out.archive));
  EXPECT_FALSE((*artifacts)->blobs().Has(*old_log));
  EXPECT_EQ(report->cache_entries_deleted, 1);
  auto cache = store::ActionCache::Open(store);
  ASSERT_TRUE(cache.ok());
  auto fresh = (*cache)->Lookup(fresh_key);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->has_value());
  auto old = (*cache)->Lookup(old_key);
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->has_value());
}

TEST(GarbageCollectorTest, DryRunReportsButDeletesNothing) {
  std::string store = Tmp("store5");
  std::string unused = store + "/sources/unused";
  auto artifacts = cas::ArtifactStore::Open(store);
  ASSERT_TRUE(artifacts.ok());
  auto orphan = StashText(**artifacts, Tmp("g"), "unreferenced");
  auto old_out = StashText(**artifacts, Tmp("h"), "expired cached output");
  const std::string old_key = "sha256:" + std::string(64, '3');
  RecordCacheEntry(store, old_key, old_out.tree.ToString(), "",
                   absl::Hours(24 * 30));
  fs::create_directories(unused);
  struct timeval tv[2] = {{time(nullptr) - 7200, 0}, {time(nullptr) - 7200, 0}};
  utimes(unused.c_str(), tv);
  AgeBlobs(store);
  auto before = (*artifacts)->blobs().ListBlobs();
  ASSERT_TRUE(before.ok());

  GcOptions options;
  options.dry_run = true;
  auto report = CollectGarbage(store, options);
  ASSERT_TRUE(report.ok()) << report.status();
  // It says what a real collection would delete...
  EXPECT_GE(report->blobs_deleted, 2);
  EXPECT_GT(report->bytes_deleted, 0);
  EXPECT_EQ(report->cache_entries_deleted, 1);
  EXPECT_EQ(report->sources_deleted, 1);
  // ...and deletes none of it.
  auto after = (*artifacts)->blobs().ListBlobs();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), before->size());
  EXPECT_TRUE((*artifacts)->blobs().Has(orphan.archive));
  EXPECT_TRUE((*artifacts)->Unstash(orphan.tree, Tmp("out3") + "/x").ok());
  EXPECT_TRUE(fs::exists(unused));
  auto cache = store::ActionCache::Open(store);
  ASSERT_TRUE(cache.ok());
  auto old = (*cache)->Lookup(old_key);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->has_value());

  // The real collection then deletes exactly what the dry run reported.
  auto real = CollectGarbage(store, GcOptions());
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_EQ(real->blobs_deleted, report->blobs_deleted);
  EXPECT_EQ(real->cache_entries_deleted, report->cache_entries_deleted);
  EXPECT_FALSE((*artifacts)->blobs().Has(orphan.archive));
}

}  // namespace
}  // namespace kiln::gc
