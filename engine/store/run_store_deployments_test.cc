// Deployment records in the run store: insert, read back, history order,
// latest per environment, what garbage collection retains, and the
// migration of a schema-5 store.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/run_store.h"
#include "engine/store/sqlite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string FreshDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/deployments_test/",
                                 info->test_suite_name(), ".", info->name());
  std::filesystem::remove_all(dir);
  return dir;
}

DeploymentRecord Make(const std::string& env, const std::string& ns,
                      const std::string& digest, bool ok = true) {
  DeploymentRecord r;
  r.environment = env;
  r.namespace_name = ns;
  r.kube_context = "kind-dev";
  r.run_id = "r20260101-000000-000000-00000001";
  r.task = "deploy-" + env;
  r.manifests_digest = digest;
  r.images = {"nginx:1", "registry.local/app@sha256:ab"};
  r.objects = {{"v1", "ConfigMap", ns, "settings"},
               {"apps/v1", "Deployment", ns, "web"}};
  r.started = absl::FromUnixMicros(1700000000000000);
  r.finished = absl::FromUnixMicros(1700000002500000);
  r.succeeded = ok;
  if (!ok) r.reason = "Deployment/web: rollout failed";
  return r;
}

std::vector<int64_t> Ids(const std::vector<DeploymentRecord>& records) {
  std::vector<int64_t> ids;
  for (const DeploymentRecord& r : records) ids.push_back(r.id);
  return ids;
}

class DeploymentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    auto store = RunStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  int64_t Record(const DeploymentRecord& r) {
    auto id = store_->RecordDeployment(r);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : -1;
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(DeploymentsTest, RecordsAndReadsBackEveryField) {
  int64_t id = Record(Make("stage", "shop-stage", "sha256:aa", false));
  ASSERT_GT(id, 0);
  auto got = store_->GetDeployment(id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, id);
  EXPECT_EQ(got->environment, "stage");
  EXPECT_EQ(got->namespace_name, "shop-stage");
  EXPECT_EQ(got->kube_context, "kind-dev");
  EXPECT_EQ(got->run_id, "r20260101-000000-000000-00000001");
  EXPECT_EQ(got->task, "deploy-stage");
  EXPECT_EQ(got->manifests_digest, "sha256:aa");
  EXPECT_THAT(got->images,
              ElementsAre("nginx:1", "registry.local/app@sha256:ab"));
  ASSERT_EQ(got->objects.size(), 2u);
  EXPECT_EQ(got->objects[1].api_version, "apps/v1");
  EXPECT_EQ(got->objects[1].kind, "Deployment");
  EXPECT_EQ(got->objects[1].namespace_name, "shop-stage");
  EXPECT_EQ(got->objects[1].name, "web");
  EXPECT_EQ(got->started, absl::FromUnixMicros(1700000000000000));
  EXPECT_EQ(got->finished, absl::FromUnixMicros(1700000002500000));
  EXPECT_FALSE(got->succeeded);
  EXPECT_EQ(got->reason, "Deployment/web: rollout failed");
  EXPECT_EQ(got->rollback_to, 0);

  // It survives reopening the store.
  store_.reset();
  auto reopened = RunStore::Open(dir_);
  ASSERT_TRUE(reopened.ok());
  auto again = (*reopened)->GetDeployment(id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->objects.size(), 2u);
}

TEST_F(DeploymentsTest, RefusesARecordWithoutItsIdentity) {
  DeploymentRecord r = Make("stage", "shop-stage", "sha256:aa");
  r.manifests_digest.clear();
  auto id = store_->RecordDeployment(r);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  r = Make("", "shop-stage", "sha256:aa");
  EXPECT_FALSE(store_->RecordDeployment(r).ok());
  EXPECT_EQ(store_->GetDeployment(1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DeploymentsTest, HistoryIsNewestFirstPerEnvironmentWithALimit) {
  int64_t a = Record(Make("stage", "shop-stage", "sha256:01"));
  int64_t b = Record(Make("prod", "shop-prod", "sha256:02"));
  int64_t c = Record(Make("stage", "shop-stage", "sha256:03", false));
  int64_t d = Record(Make("stage", "shop-stage", "sha256:04"));
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(c, d);

  DeploymentFilter stage;
  stage.environment = "stage";
  auto history = store_->ListDeployments(stage);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_THAT(Ids(*history), ElementsAre(d, c, a));
  EXPECT_THAT((*history)[0].images, ElementsAre("nginx:1", testing::_));

  stage.limit = 2;
  EXPECT_THAT(Ids(*store_->ListDeployments(stage)), ElementsAre(d, c));

  DeploymentFilter all;
  EXPECT_THAT(Ids(*store_->ListDeployments(all)), ElementsAre(d, c, b, a));
  DeploymentFilter none;
  none.environment = "nope";
  EXPECT_TRUE(store_->ListDeployments(none)->empty());
}

TEST_F(DeploymentsTest, FilterByRun) {
  DeploymentRecord other = Make("stage", "shop-stage", "sha256:01");
  other.run_id = "r20260101-000000-000000-00000002";
  int64_t a = Record(Make("stage", "shop-stage", "sha256:02"));
  int64_t b = Record(other);
  int64_t c = Record(Make("stage", "shop-stage", "sha256:03"));
  DeploymentFilter f;
  f.environment = "stage";
  f.run_id = "r20260101-000000-000000-00000001";
  EXPECT_THAT(Ids(*store_->ListDeployments(f)), ElementsAre(c, a));
  f.run_id = other.run_id;
  EXPECT_THAT(Ids(*store_->ListDeployments(f)), ElementsAre(b));
  f.run_id = "r20260101-000000-000000-00000003";
  EXPECT_TRUE(store_->ListDeployments(f)->empty());
}

TEST_F(DeploymentsTest, LatestIsOnePerEnvironmentAndNamespace) {
  Record(Make("stage", "shop-stage", "sha256:01"));
  int64_t prod = Record(Make("prod", "shop-prod", "sha256:02"));
  Record(Make("preview", "shop-a", "sha256:03"));
  int64_t preview_b = Record(Make("preview", "shop-b", "sha256:04"));
  int64_t stage = Record(Make("stage", "shop-stage", "sha256:05", false));
  int64_t preview_a = Record(Make("preview", "shop-a", "sha256:06"));
  auto latest = store_->LatestDeployments();
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_THAT(Ids(*latest), ElementsAre(preview_a, preview_b, prod, stage));
  EXPECT_EQ((*latest)[3].manifests_digest, "sha256:05");
  EXPECT_FALSE((*latest)[3].succeeded);
  EXPECT_EQ((*latest)[0].objects.size(), 2u);
}

TEST_F(DeploymentsTest, RetainsTheLastNDigestsOfEachEnvironment) {
  for (int i = 1; i <= 5; ++i) {
    Record(Make("stage", "shop-stage", absl::StrCat("sha256:s", i)));
  }
  Record(Make("prod", "shop-prod", "sha256:p1"));
  Record(Make("prod", "shop-prod", "sha256:p2"));
  auto kept = store_->RetainedDeploymentDigests(3);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(*kept, UnorderedElementsAre("sha256:s3", "sha256:s4", "sha256:s5",
                                          "sha256:p1", "sha256:p2"));
  EXPECT_TRUE(store_->RetainedDeploymentDigests(0)->empty());
}

TEST_F(DeploymentsTest, RollbackRecordsPointAtTheirSource) {
  int64_t first = Record(Make("stage", "shop-stage", "sha256:01"));
  DeploymentRecord rb = Make("stage", "shop-stage", "sha256:01");
  rb.run_id.clear();
  rb.task = "rollback";
  rb.rollback_to = first;
  int64_t id = Record(rb);
  auto got = store_->GetDeployment(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->rollback_to, first);
  EXPECT_EQ(got->task, "rollback");
  EXPECT_EQ(got->run_id, "");
}

// A store written by a kiln of schema 5 (no deployments tables) is migrated
// on open, keeping its runs; ids then start at 1.
TEST_F(DeploymentsTest, MigratesASchemaFiveStore) {
  v1::Pipeline p;
  p.set_name("shop");
  p.add_tasks()->set_name("deploy");
  auto run = store_->CreateRun(p, v1::Trigger(), "", "");
  ASSERT_TRUE(run.ok());
  ASSERT_GE(RunStore::SchemaVersion(), 6);
  store_.reset();
  {
    auto db = Database::Open(dir_ + "/runs.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec("DROP TABLE replays;"
                           " DROP TABLE replay_sources;"
                           " DROP TABLE pipeline_blobs;"
                           " ALTER TABLE runs DROP COLUMN pipeline_digest;"
                           " ALTER TABLE runs DROP COLUMN replay_of;"
                           " ALTER TABLE runs DROP COLUMN replay_seq;"
                           " ALTER TABLE runs DROP COLUMN replay_us;"
                           " DROP TABLE deployment_objects;"
                           " DROP TABLE deployment_images;"
                           " DROP TABLE deployments;"
                           " DELETE FROM sqlite_sequence;"
                           " PRAGMA user_version = 5;")
                    .ok());
  }
  auto reopened = RunStore::Open(dir_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  {
    auto db = Database::Open(dir_ + "/runs.db");
    EXPECT_EQ(*(*db)->QueryInt("PRAGMA user_version"),
              RunStore::SchemaVersion());
  }
  EXPECT_TRUE((*reopened)->GetRun(run->run_id).ok());
  auto id = (*reopened)->RecordDeployment(Make("stage", "s", "sha256:01"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 1);
  EXPECT_EQ((*reopened)->ListDeployments(DeploymentFilter())->size(), 1u);
}

}  // namespace
}  // namespace kiln::store
