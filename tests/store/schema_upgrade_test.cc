// Every checked-in store of an older (or the current) schema,
// tests/store/schema_fixtures/vN, opens with today's code, is migrated to
// today's schema, and keeps its content (schema_fixture.h); a run recorded
// with a plaintext secret param (before schema 2) is sealed on open.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "engine/store/sqlite.h"
#include "gtest/gtest.h"
#include "tests/store/schema_fixture.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;
namespace f = fixture;

std::string FixtureRoot() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                      std::getenv("TEST_WORKSPACE"),
                      "/tests/store/schema_fixtures");
}

int64_t UserVersion(const std::string& db_path) {
  auto db = Database::Open(db_path);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return -1;
  auto v = (*db)->QueryInt("PRAGMA user_version");
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : -1;
}

// A writable copy of one fixture store (runfiles are read-only symlinks).
std::string CopyFixture(const std::string& version) {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", version);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* db : {"runs.db", "action_cache.db"}) {
    fs::copy_file(fs::canonical(FixtureRoot() + "/" + version + "/" + db),
                  dir + "/" + db);
    chmod((dir + "/" + db).c_str(), 0600);
  }
  return dir;
}

// 3 for "v3".
int64_t UserVersionOf(const std::string& version) {
  return std::stoll(version.substr(1));
}

std::vector<std::string> FixtureVersions() {
  std::vector<std::string> versions;
  for (const auto& entry : fs::directory_iterator(FixtureRoot())) {
    versions.push_back(entry.path().filename().string());
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

TEST(SchemaUpgradeTest, EveryFixtureVersionIsPresent) {
  // One fixture per schema version up to today's: a schema change without
  // a fixture of the version before it fails here.
  std::vector<std::string> want;
  for (int64_t v = 1; v <= RunStore::SchemaVersion(); ++v) {
    want.push_back(absl::StrCat("v", v));
  }
  EXPECT_EQ(FixtureVersions(), want);
}

TEST(SchemaUpgradeTest, PopulatedStoresOpenWithTheirData) {
  for (const std::string& version : FixtureVersions()) {
    SCOPED_TRACE(version);
    std::string dir = CopyFixture(version);
    // The fixture really is of that version.
    EXPECT_EQ(absl::StrCat("v", UserVersion(dir + "/runs.db")), version);

    auto runs = RunStore::Open(dir);
    ASSERT_TRUE(runs.ok()) << runs.status();
    EXPECT_EQ(UserVersion(dir + "/runs.db"), RunStore::SchemaVersion());
    auto page = (*runs)->ListRuns({}, 10, "");
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->runs.size(), 1u);
    const std::string id = page->runs[0].id();

    auto run = (*runs)->GetRun(id);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->pipeline_name(), f::kPipeline);
    EXPECT_EQ(run->state(), v1::RUN_RUNNING);
    EXPECT_EQ(run->trigger().branch(), f::kBranch);
    EXPECT_EQ(run->trigger().params().at(f::kParam), f::kParamValue);
    ASSERT_EQ(run->tasks_size(), 3);
    EXPECT_EQ(run->tasks(0).name(), "build");
    EXPECT_EQ(run->tasks(0).state(), v1::TASK_SUCCEEDED);
    EXPECT_EQ(run->tasks(0).outputs().at("app"), f::kArtifactDigest);
    EXPECT_EQ(run->tasks(1).state(), v1::TASK_FAILED);
    EXPECT_EQ(run->tasks(1).exit_code(), 2);
    const int64_t schema = UserVersionOf(version);
    EXPECT_EQ(run->tasks(1).error_code(),
              schema >= f::kFirstVersionWithErrorCode ? f::kErrorCode : 0);
    EXPECT_EQ(run->tasks(2).name(), "cleanup");
    EXPECT_EQ(run->tasks(2).state(), v1::TASK_PENDING);
    EXPECT_EQ(*(*runs)->GetSourceDir(id), f::kSourceDir);
    auto pipeline = (*runs)->GetPipeline(id);
    ASSERT_TRUE(pipeline.ok());
    EXPECT_EQ(pipeline->tasks_size(), 2);

    auto events = (*runs)->ReadEvents(id, 0, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_EQ(events->size(), 5u);
    for (size_t i = 0; i < events->size(); ++i) {
      EXPECT_EQ((*events)[i].sequence(), i + 1);
    }
    EXPECT_EQ((*events)[2].log().text(), f::kLogText);
    auto logs = (*runs)->AttemptLogs(id, "build");
    ASSERT_TRUE(logs.ok()) << logs.status();
    ASSERT_EQ(logs->size(), 1u);
    EXPECT_EQ((*logs)[0].bytes, 42);

    // The idempotency key still finds the run.
    v1::Pipeline again;
    again.set_name(f::kPipeline);
    again.add_tasks()->set_name("build");
    auto created =
        (*runs)->CreateRun(again, v1::Trigger(), "x", f::kIdempotencyKey);
    ASSERT_TRUE(created.ok()) << created.status();
    EXPECT_FALSE(created->created);
    EXPECT_EQ(created->run_id, id);

    // Deployment records: the fixture's (schema 6 on), and a new one.
    auto deployments = (*runs)->ListDeployments({});
    ASSERT_TRUE(deployments.ok()) << deployments.status();
    const bool has_deployment = schema >= f::kFirstVersionWithDeployments;
    ASSERT_EQ(deployments->size(), has_deployment ? 1u : 0u);
    if (has_deployment) {
      const DeploymentRecord& d = (*deployments)[0];
      EXPECT_EQ(d.id, 1);
      EXPECT_EQ(d.environment, f::kEnvironment);
      EXPECT_EQ(d.namespace_name, f::kNamespace);
      EXPECT_EQ(d.run_id, id);
      EXPECT_EQ(d.manifests_digest, f::kArtifactDigest);
      ASSERT_EQ(d.images.size(), 1u);
      EXPECT_EQ(d.images[0], f::kImage);
      ASSERT_EQ(d.objects.size(), 1u);
      EXPECT_EQ(d.objects[0].name, "settings");
      EXPECT_TRUE(d.succeeded);
      // The live state (schema 7 on); older records read as unknown.
      const bool live = schema >= f::kFirstVersionWithLiveState;
      EXPECT_EQ(d.force, live);
      EXPECT_EQ(d.objects[0].uid, live ? f::kObjectUid : "");
      EXPECT_EQ(d.objects[0].resource_version,
                live ? f::kObjectResourceVersion : "");
      EXPECT_EQ(d.objects[0].generation, live ? f::kObjectGeneration : 0);
    }
    DeploymentRecord next;
    next.environment = f::kEnvironment;
    next.namespace_name = f::kNamespace;
    next.manifests_digest = f::kArtifactDigest;
    next.force = true;
    next.objects = {{"v1", "ConfigMap", f::kNamespace, "settings"}};
    next.objects[0].uid = f::kObjectUid;
    next.objects[0].resource_version = f::kObjectResourceVersion;
    next.objects[0].generation = f::kObjectGeneration;
    auto next_id = (*runs)->RecordDeployment(next);
    ASSERT_TRUE(next_id.ok()) << next_id.status();
    EXPECT_EQ(*next_id, has_deployment ? 2 : 1);
    // The migrated store keeps the live state of a new record.
    auto again_read = (*runs)->GetDeployment(*next_id);
    ASSERT_TRUE(again_read.ok()) << again_read.status();
    EXPECT_TRUE(again_read->force);
    ASSERT_EQ(again_read->objects.size(), 1u);
    EXPECT_EQ(again_read->objects[0].uid, f::kObjectUid);
    EXPECT_EQ(again_read->objects[0].resource_version,
              f::kObjectResourceVersion);
    EXPECT_EQ(again_read->objects[0].generation, f::kObjectGeneration);

    auto cache = ActionCache::Open(dir);
    ASSERT_TRUE(cache.ok()) << cache.status();
    auto hit = (*cache)->Lookup(f::kActionKey, /*with_components=*/true);
    ASSERT_TRUE(hit.ok()) << hit.status();
    ASSERT_TRUE(hit->has_value());
    EXPECT_EQ((*hit)->outputs.at("app"), f::kArtifactDigest);
    EXPECT_EQ((*hit)->results.at(f::kResultKey), f::kResultValue);
    EXPECT_EQ((*hit)->run_id, id);
    ASSERT_EQ((*hit)->components.size(), 1u);
    EXPECT_EQ((*hit)->components[0].name, f::kComponent);
    EXPECT_EQ((*hit)->components[0].value_digest, f::kComponentDigest);
    auto latest = (*cache)->LatestForTask(f::kPipeline, "build");
    ASSERT_TRUE(latest.ok());
    EXPECT_TRUE(latest->has_value());
  }
}

// Schema 4 records TaskStatus.error_code. A v3 store is upgraded in place:
// its tasks read error code 0, and events recorded after the upgrade keep
// theirs (before schema 4 the code was dropped: GetRun, and so a run's
// final result, always said 0).
TEST(SchemaUpgradeTest, AV3StoreUpgradesAndThenKeepsErrorCodes) {
  std::string dir = CopyFixture("v3");
  ASSERT_EQ(UserVersion(dir + "/runs.db"), 3);
  auto runs = RunStore::Open(dir);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_GE(UserVersion(dir + "/runs.db"), 4);
  auto page = (*runs)->ListRuns({}, 10, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->runs.size(), 1u);
  const std::string id = page->runs[0].id();
  auto before = (*runs)->GetRun(id);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->tasks(1).error_code(), 0);

  std::vector<v1::RunEvent> events(1);
  v1::TaskStateChanged* change = events[0].mutable_task_state();
  change->set_task("cleanup");
  change->set_state(v1::TASK_FAILED);
  change->set_error_code(static_cast<int>(absl::StatusCode::kUnavailable));
  ASSERT_TRUE((*runs)->AppendEvents(id, events).ok());
  // A task the pipeline did not list is inserted with its code too.
  change->set_task("generated");
  change->set_error_code(static_cast<int>(absl::StatusCode::kNotFound));
  ASSERT_TRUE((*runs)->AppendEvents(id, events).ok());
  runs->reset();  // reopened: the code is durable

  auto reopened = RunStore::Open(dir);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto after = (*reopened)->GetRun(id);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->tasks_size(), 4);
  EXPECT_EQ(after->tasks(2).name(), "cleanup");
  EXPECT_EQ(after->tasks(2).error_code(),
            static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(after->tasks(3).name(), "generated");
  EXPECT_EQ(after->tasks(3).error_code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(after->tasks(1).error_code(), 0);
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A run recorded before secret params were sealed (schema 1, then
// migrated to 2 by SQL alone) keeps the value in plaintext in its stored
// trigger. Made from the v2 fixture, whose trigger holds kParam's value as
// any kiln of schema < 2 stored every param: its pipeline now declares the
// param secret. Opening the store seals the value and overwrites the
// plaintext in the database file. Before: GetRun (and `kiln runs`) showed
// the value and runs.db held it.
TEST(SchemaUpgradeTest, PlaintextSecretsOfOldRunsAreSealed) {
  std::string dir = CopyFixture("v2");
  {
    auto db = Database::Open(dir + "/runs.db");
    ASSERT_TRUE(db.ok()) << db.status();
    auto read = (*db)->Prepare("SELECT id, pipeline FROM runs");
    ASSERT_TRUE(read.ok()) << read.status();
    auto row = read->Step();
    ASSERT_TRUE(row.ok() && *row);
    std::string id = read->Text(0);
    v1::Pipeline pipeline;
    ASSERT_TRUE(pipeline.ParseFromString(read->Blob(1)));
    read->Reset();
    v1::Param* param = pipeline.add_params();
    param->set_name(f::kParam);
    param->set_secret(true);
    std::string bytes;
    ASSERT_TRUE(pipeline.SerializeToString(&bytes));
    auto write = (*db)->Prepare("UPDATE runs SET pipeline = ?2 WHERE id = ?1");
    ASSERT_TRUE(write.ok()) << write.status();
    write->BindText(1, id).BindBlob(2, bytes);
    ASSERT_TRUE(write->Run().ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  ASSERT_NE(ReadWhole(dir + "/runs.db").find(f::kParamValue), std::string::npos)
      << "the fixture holds the value in plaintext";

  std::string id;
  {
    auto runs = RunStore::Open(dir);
    ASSERT_TRUE(runs.ok()) << runs.status();
    auto page = (*runs)->ListRuns({}, 10, "");
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->runs.size(), 1u);
    id = page->runs[0].id();
    EXPECT_EQ(page->runs[0].trigger().params().at(f::kParam),
              kSecretPlaceholder);
    auto run = (*runs)->GetRun(id);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->trigger().params().at(f::kParam), kSecretPlaceholder);
    EXPECT_EQ(run->trigger().branch(), f::kBranch);
    // What resume needs is still there, decrypted.
    auto trigger = (*runs)->GetTriggerWithSecrets(id);
    ASSERT_TRUE(trigger.ok()) << trigger.status();
    EXPECT_EQ(trigger->params().at(f::kParam), f::kParamValue);
  }
  // The plaintext is gone from the database file and its WAL.
  EXPECT_EQ(ReadWhole(dir + "/runs.db").find(f::kParamValue),
            std::string::npos);
  EXPECT_EQ(ReadWhole(dir + "/runs.db-wal").find(f::kParamValue),
            std::string::npos);
  // Done once: the next open has nothing left to seal, and still decrypts.
  auto again = RunStore::Open(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  auto trigger = (*again)->GetTriggerWithSecrets(id);
  ASSERT_TRUE(trigger.ok()) << trigger.status();
  EXPECT_EQ(trigger->params().at(f::kParam), f::kParamValue);
  auto pending = Database::Open(dir + "/runs.db");
  ASSERT_TRUE(pending.ok());
  auto left = (*pending)->QueryInt("SELECT COUNT(*) FROM reseal_pending");
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(*left, 0);
}

}  // namespace
}  // namespace kiln::store
