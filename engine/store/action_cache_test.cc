#include "engine/store/action_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/action_cache_schema.h"
#include "engine/store/action_hit.h"
#include "engine/store/sqlite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::string FreshDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/action_cache_test/",
                                 info->test_suite_name(), ".", info->name());
  std::filesystem::remove_all(dir);
  return dir;
}

ActionResult Result(const std::string& task, absl::Time created,
                    std::vector<KeyComponent> components) {
  ActionResult r;
  r.exit_code = 0;
  r.outputs["app"] = absl::StrCat("sha256:out-", task);
  r.results["digest"] = "sha256:img";
  r.log_digest = absl::StrCat("sha256:log-", task);
  r.log_path = "logs/r1/" + task + ".1.log";
  r.created = created;
  r.pipeline_name = "kcow";
  r.task_name = task;
  r.run_id = "r1";
  r.components = std::move(components);
  return r;
}

class ActionCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    auto cache = ActionCache::Open(dir_);
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(*cache);
  }
  std::string dir_;
  std::unique_ptr<ActionCache> cache_;
};

TEST_F(ActionCacheTest, RoundTrip) {
  absl::Time t = absl::FromUnixMicros(1700000000000001);
  ActionResult in = Result("build", t, {{"version", "v1"}, {"kind", "run"}});
  in.exit_code = 3;
  ASSERT_TRUE(cache_->Put("abc123", in).ok());

  auto miss = cache_->Lookup("fff000");
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value());

  auto hit = cache_->Lookup("abc123");
  ASSERT_TRUE(hit.ok()) << hit.status();
  ASSERT_TRUE(hit->has_value());
  const ActionResult& out = **hit;
  EXPECT_EQ(out.key, "abc123");
  EXPECT_EQ(out.exit_code, 3);
  EXPECT_THAT(out.outputs, ElementsAre(Pair("app", "sha256:out-build")));
  EXPECT_THAT(out.results, ElementsAre(Pair("digest", "sha256:img")));
  EXPECT_EQ(out.log_digest, "sha256:log-build");
  EXPECT_EQ(out.log_path, "logs/r1/build.1.log");
  EXPECT_EQ(out.created, t);
  EXPECT_EQ(out.pipeline_name, "kcow");
  EXPECT_EQ(out.task_name, "build");
  EXPECT_EQ(out.run_id, "r1");
  EXPECT_TRUE(out.components.empty());  // not asked for

  auto full = cache_->Lookup("abc123", /*with_components=*/true);
  ASSERT_TRUE(full.ok() && full->has_value());
  EXPECT_THAT((*full)->components, ElementsAre(KeyComponent{"version", "v1"},
                                               KeyComponent{"kind", "run"}));
}

TEST_F(ActionCacheTest, SurvivesReopen) {
  absl::Time t = absl::FromUnixMicros(1700000000123456);
  ActionResult in = Result("t", t, {{"version", "v1"}});
  in.exit_code = 7;
  ASSERT_TRUE(cache_->Put("k", in).ok());
  cache_.reset();
  auto reopened = ActionCache::Open(dir_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto hit = (*reopened)->Lookup("k", /*with_components=*/true);
  ASSERT_TRUE(hit.ok()) << hit.status();
  ASSERT_TRUE(hit->has_value());
  // The whole entry, as written, not just "something is there".
  EXPECT_EQ((*hit)->key, "k");
  EXPECT_EQ((*hit)->exit_code, 7);
  EXPECT_THAT((*hit)->outputs, ElementsAre(Pair("app", "sha256:out-t")));
  EXPECT_THAT((*hit)->results, ElementsAre(Pair("digest", "sha256:img")));
  EXPECT_EQ((*hit)->log_digest, "sha256:log-t");
  EXPECT_EQ((*hit)->log_path, "logs/r1/t.1.log");
  EXPECT_EQ((*hit)->created, t);
  EXPECT_EQ((*hit)->task_name, "t");
  EXPECT_EQ((*hit)->run_id, "r1");
  EXPECT_THAT((*hit)->components, ElementsAre(KeyComponent{"version", "v1"}));
}

TEST_F(ActionCacheTest, LastWriterWins) {
  ActionResult first = Result("t", absl::FromUnixSeconds(100), {{"a", "1"}});
  first.outputs["old"] = "sha256:old";
  ASSERT_TRUE(cache_->Put("k", first).ok());
  ActionResult second = Result("t", absl::FromUnixSeconds(200), {{"a", "1"}});
  second.run_id = "r2";
  ASSERT_TRUE(cache_->Put("k", second).ok());
  auto hit = cache_->Lookup("k", true);
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ((*hit)->run_id, "r2");
  EXPECT_EQ((*hit)->outputs.count("old"), 0u);  // replaced, not merged
  EXPECT_EQ((*hit)->components.size(), 1u);
}

TEST_F(ActionCacheTest, LookupManyAnswersEachKeyInOrder) {
  ASSERT_TRUE(cache_->Put("k1", Result("one", absl::Now(), {{"a", "1"}})).ok());
  ASSERT_TRUE(cache_->Put("k2", Result("two", absl::Now(), {{"a", "2"}})).ok());
  auto got = cache_->LookupMany({"k2", "missing", "k1", "k2"});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 4u);
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ((*got)[0]->key, "k2");
  EXPECT_EQ((*got)[0]->task_name, "two");
  EXPECT_THAT((*got)[0]->outputs, ElementsAre(Pair("app", "sha256:out-two")));
  EXPECT_TRUE((*got)[0]->components.empty());  // not asked for
  EXPECT_FALSE((*got)[1].has_value());
  ASSERT_TRUE((*got)[2].has_value());
  EXPECT_EQ((*got)[2]->task_name, "one");
  ASSERT_TRUE((*got)[3].has_value());
  EXPECT_EQ((*got)[3]->key, "k2");
  auto none = cache_->LookupMany({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(cache_->LookupMany({"k1", "a b"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ActionCacheTest, OutputArchivesRoundTripAndAreReplacedWithTheEntry) {
  ActionResult in = Result("build", absl::Now(), {{"a", "1"}});
  in.archives["app"] = OutputArchive{"sha256:arch-app", 1234};
  ASSERT_TRUE(cache_->Put("k", in).ok());
  ASSERT_TRUE(cache_->Put("bare", Result("t", absl::Now(), {})).ok());
  auto hit = cache_->Lookup("k");
  ASSERT_TRUE(hit.ok() && hit->has_value()) << hit.status();
  EXPECT_THAT((*hit)->archives,
              ElementsAre(Pair("app", OutputArchive{"sha256:arch-app", 1234})));
  auto many = cache_->LookupMany({"bare", "k"});
  ASSERT_TRUE(many.ok()) << many.status();
  ASSERT_TRUE((*many)[0].has_value() && (*many)[1].has_value());
  EXPECT_TRUE((*many)[0]->archives.empty()) << "none recorded";
  EXPECT_EQ((*many)[1]->archives, (*hit)->archives);
  // A new entry for the key takes the old one's archives with it.
  ASSERT_TRUE(cache_->Put("k", Result("build", absl::Now(), {})).ok());
  auto replaced = cache_->Lookup("k");
  ASSERT_TRUE(replaced.ok() && replaced->has_value());
  EXPECT_TRUE((*replaced)->archives.empty());
  // And removing the entry removes its archives (no orphan rows).
  ASSERT_TRUE(cache_->Put("k", in).ok());
  cache_.reset();
  {
    auto db = Database::Open(dir_ + "/action_cache.db");
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Exec("PRAGMA foreign_keys = ON;"
                           " DELETE FROM actions WHERE key = 'k'")
                    .ok());
    EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM action_archives"), 0);
  }
}

// Schema 3: a lookup reads an entry's values and archives from its hit
// column; the tables stay the record, and are read when the column is NULL
// (an entry written before schema 3) or does not decode.
TEST_F(ActionCacheTest, LookupsReadTheHitColumnAndFallBackToTheTables) {
  ActionResult in = Result("build", absl::Now(), {{"a", "1"}});
  in.archives["app"] = OutputArchive{"sha256:arch-app", 1234};
  for (const char* key : {"k", "null", "bad"}) {
    ASSERT_TRUE(cache_->Put(key, in).ok());
  }
  {
    auto db = Database::Open(dir_ + "/action_cache.db");
    ASSERT_TRUE(db.ok()) << db.status();
    EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM actions"
                               " WHERE hit IS NOT NULL"),
              3);
    // Without its table rows, "k" is still whole: the lookup read the hit.
    ASSERT_TRUE(
        (*db)
            ->Exec("DELETE FROM action_values WHERE key = 'k';"
                   " DELETE FROM action_archives WHERE key = 'k';"
                   " UPDATE actions SET hit = NULL WHERE key = 'null';"
                   " UPDATE actions SET hit = X'01ff' WHERE key = 'bad'")
            .ok());
  }
  auto many = cache_->LookupMany({"k", "null", "bad"});
  ASSERT_TRUE(many.ok()) << many.status();
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE((*many)[i].has_value()) << i;
    const ActionResult& got = *(*many)[i];
    EXPECT_EQ(got.outputs, in.outputs) << i;
    EXPECT_EQ(got.results, in.results) << i;
    EXPECT_EQ(got.archives, in.archives) << i;
    EXPECT_EQ(got.log_digest, in.log_digest) << i;
    EXPECT_EQ(got.run_id, in.run_id) << i;
  }
  EXPECT_EQ(cache_->recoveries(), 0) << "a bad hit is not a damaged cache";
}

TEST(ActionCacheHitEncodingTest, RoundTripsAndRefusesAnythingMalformed) {
  ActionResult in;
  in.outputs = {{"app", "sha256:1"}, {"docs", "sha256:2"}};
  in.results = {{"digest", std::string("a\0b\xff", 4)}, {"empty", ""}};
  // Any size the table can hold, the unknown size (-1) and the extremes
  // included.
  in.archives = {
      {"app", OutputArchive{"sha256:arch", int64_t{1} << 40}},
      {"docs", OutputArchive{"sha256:arch2", 0}},
      {"max", OutputArchive{"m", std::numeric_limits<int64_t>::max()}},
      {"min", OutputArchive{"n", std::numeric_limits<int64_t>::min()}},
      {"unknown", OutputArchive{"sha256:u", -1}}};
  const std::string blob = EncodeHit(in);
  ActionResult out;
  ASSERT_TRUE(DecodeHit(blob, &out));
  EXPECT_EQ(out.outputs, in.outputs);
  EXPECT_EQ(out.results, in.results);
  EXPECT_EQ(out.archives, in.archives);
  ActionResult none;
  ASSERT_TRUE(DecodeHit(EncodeHit(ActionResult{}), &none));
  EXPECT_TRUE(none.outputs.empty() && none.results.empty() &&
              none.archives.empty());

  // Every proper prefix, one byte more, another format byte: refused, and
  // the result is left as it was.
  ActionResult untouched;
  untouched.outputs["keep"] = "me";
  for (size_t n = 0; n < blob.size(); ++n) {
    EXPECT_FALSE(DecodeHit(blob.substr(0, n), &untouched)) << n;
  }
  EXPECT_FALSE(DecodeHit(blob + "x", &untouched));
  std::string other = blob;
  other[0] = 2;
  EXPECT_FALSE(DecodeHit(other, &untouched));
  // A count larger than the bytes left, and keys out of order.
  EXPECT_FALSE(
      DecodeHit(std::string("\x01\xff\xff\xff\xff\x0f", 6), &untouched));
  EXPECT_FALSE(DecodeHit(std::string("\x01\x02\x01"
                                     "b\x00\x01"
                                     "a\x00\x00\x00",
                                     10),
                         &untouched));
  EXPECT_TRUE(DecodeHit(std::string("\x01\x02\x01"
                                    "a\x00\x01"
                                    "b\x00\x00\x00",
                                    10),
                        &out));
  EXPECT_THAT(untouched.outputs, ElementsAre(Pair("keep", "me")));
}

// A store written by a kiln that knew schema 1 (no action_archives) is
// upgraded in place: its entries stay, without recorded archives.
TEST(ActionCacheMigrationTest, ASchemaOneStoreIsUpgradedAndKeepsItsEntries) {
  std::string dir = FreshDir();
  std::filesystem::create_directories(dir);
  {
    auto db = Database::Open(dir + "/action_cache.db");
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(std::string(ActionCacheMigrations()[0].sql)).ok());
    ASSERT_TRUE((*db)
                    ->Exec("PRAGMA user_version = 1;"
                           " INSERT INTO actions (key, exit_code, created_us)"
                           " VALUES ('old', 0, 1);"
                           " INSERT INTO action_values VALUES"
                           " ('old', 'output', 'app', 'sha256:t')")
                    .ok());
  }
  auto cache = ActionCache::Open(dir);
  ASSERT_TRUE(cache.ok()) << cache.status();
  auto hit = (*cache)->Lookup("old");
  ASSERT_TRUE(hit.ok() && hit->has_value()) << hit.status();
  EXPECT_THAT((*hit)->outputs, ElementsAre(Pair("app", "sha256:t")));
  EXPECT_TRUE((*hit)->archives.empty());
  ActionResult next = Result("t", absl::Now(), {});
  next.archives["app"] = OutputArchive{"sha256:a", 9};
  ASSERT_TRUE((*cache)->Put("new", next).ok());
  auto got = (*cache)->Lookup("new");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->archives.size(), 1u);
}

TEST_F(ActionCacheTest, RejectsBadKeys) {
  ActionResult r = Result("t", absl::Now(), {});
  EXPECT_EQ(cache_->Put("", r).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache_->Put("a b", r).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache_->Put(std::string(257, 'a'), r).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache_->Lookup("a\nb").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ActionCacheTest, LatestForTaskAndExplain) {
  std::vector<KeyComponent> v1 = {{"version", "1"},
                                  {"kind", "run"},
                                  {"env.CC", "sha256:gcc"},
                                  {"input.source", "sha256:src1"}};
  std::vector<KeyComponent> v2 = {{"version", "1"},
                                  {"kind", "run"},
                                  {"input.source", "sha256:src2"},
                                  {"image", "sha256:img"}};
  ASSERT_TRUE(
      cache_->Put("key1", Result("build", absl::FromUnixSeconds(100), v1))
          .ok());
  ASSERT_TRUE(
      cache_->Put("key2", Result("build", absl::FromUnixSeconds(200), v2))
          .ok());
  ASSERT_TRUE(
      cache_->Put("key3", Result("test", absl::FromUnixSeconds(300), {})).ok());

  auto latest = cache_->LatestForTask("kcow", "build");
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->key, "key2");
  EXPECT_EQ((*latest)->components, v2);
  EXPECT_FALSE(cache_->LatestForTask("kcow", "deploy")->has_value());
  EXPECT_FALSE(cache_->LatestForTask("other", "build")->has_value());

  // Explain why v1's key missed against what was recorded last (v2).
  std::vector<ComponentChange> changes = DiffKeyComponents(v2, v1);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].kind, ComponentChange::Kind::kAdded);
  EXPECT_EQ(changes[0].name, "env.CC");
  EXPECT_EQ(changes[1].kind, ComponentChange::Kind::kChanged);
  EXPECT_EQ(changes[1].name, "input.source");
  EXPECT_EQ(changes[1].old_digest, "sha256:src2");
  EXPECT_EQ(changes[1].new_digest, "sha256:src1");
  EXPECT_EQ(changes[2].kind, ComponentChange::Kind::kRemoved);
  EXPECT_EQ(changes[2].name, "image");
  EXPECT_TRUE(DiffKeyComponents(v1, v1).empty());
}

TEST(DiffKeyComponentsTest, RepeatedNamesMatchInOrder) {
  std::vector<KeyComponent> a = {{"arg", "x"}, {"arg", "y"}};
  std::vector<KeyComponent> b = {{"arg", "x"}, {"arg", "z"}, {"arg", "w"}};
  auto changes = DiffKeyComponents(a, b);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].kind, ComponentChange::Kind::kChanged);
  EXPECT_EQ(changes[0].old_digest, "y");
  EXPECT_EQ(changes[0].new_digest, "z");
  EXPECT_EQ(changes[1].kind, ComponentChange::Kind::kAdded);
  EXPECT_EQ(changes[1].new_digest, "w");
}

TEST_F(ActionCacheTest, ReferencedDigestsAndRemoval) {
  ASSERT_TRUE(
      cache_->Put("old", Result("a", absl::FromUnixSeconds(100), {})).ok());
  ActionResult mid = Result("b", absl::FromUnixSeconds(200), {});
  mid.outputs["lib"] = "sha256:out-a";  // shared with "old": listed once
  ASSERT_TRUE(cache_->Put("mid", mid).ok());
  ActionResult nolog = Result("c", absl::FromUnixSeconds(300), {});
  nolog.log_digest.clear();
  ASSERT_TRUE(cache_->Put("new", nolog).ok());

  auto all = cache_->ReferencedDigests(absl::InfinitePast());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ElementsAre("sha256:log-a", "sha256:log-b", "sha256:out-a",
                                "sha256:out-b", "sha256:out-c"));
  auto recent = cache_->ReferencedDigests(absl::FromUnixSeconds(200));
  ASSERT_TRUE(recent.ok());
  EXPECT_THAT(*recent, ElementsAre("sha256:log-b", "sha256:out-a",
                                   "sha256:out-b", "sha256:out-c"));

  auto removed = cache_->RemoveOlderThan(absl::FromUnixSeconds(250));
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2);
  EXPECT_FALSE(cache_->Lookup("old")->has_value());
  EXPECT_FALSE(cache_->Lookup("mid")->has_value());
  auto kept = cache_->Lookup("new");
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ((*kept)->task_name, "c");
  EXPECT_TRUE((*kept)->log_digest.empty());
  EXPECT_THAT(*cache_->ReferencedDigests(absl::InfinitePast()),
              ElementsAre("sha256:out-c"));
}

TEST_F(ActionCacheTest, ConcurrentWritersAndReaders) {
  auto other = ActionCache::Open(dir_);  // a second connection, as another
  ASSERT_TRUE(other.ok());               // process would have
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    ActionCache* cache = t % 2 ? other->get() : cache_.get();
    threads.emplace_back([cache, t] {
      for (int i = 0; i < 50; ++i) {
        std::string key = absl::StrCat("k", i % 10);
        ActionResult r =
            Result(absl::StrCat("t", t), absl::Now(), {{"i", absl::StrCat(i)}});
        ASSERT_TRUE(cache->Put(key, r).ok());
        auto hit = cache->Lookup(key, true);
        ASSERT_TRUE(hit.ok()) << hit.status();
        ASSERT_TRUE(hit->has_value());
        // Whole entries only: one writer's outputs with its own components.
        EXPECT_EQ((*hit)->components.size(), 1u);
        EXPECT_EQ((*hit)->outputs.at("app"),
                  absl::StrCat("sha256:out-", (*hit)->task_name));
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace kiln::store

namespace kiln::store {
namespace {

// Corrupt pages behind an intact header and schema open fine and fail only
// when read: the cache recovers there too, and the operation succeeds.
TEST(ActionCacheRecoveryTest, CorruptPagesFoundMidUseAreMovedAsideAndRebuilt) {
  std::string dir = FreshDir();
  {
    auto cache = ActionCache::Open(dir);
    ASSERT_TRUE(cache.ok());
    for (int i = 0; i < 400; ++i) {
      ASSERT_TRUE((*cache)
                      ->Put(absl::StrCat("key", i),
                            Result(absl::StrCat("task", i), absl::Now(), {}))
                      .ok());
    }
  }
  const std::string db = dir + "/action_cache.db";
  std::string bytes;
  {
    std::ifstream in(db, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 4 * 4096u);
  for (size_t i = 4096; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>(0x5A ^ (i * 13));
  }
  std::ofstream(db, std::ios::binary | std::ios::trunc) << bytes;
  std::filesystem::remove(db + "-wal");
  std::filesystem::remove(db + "-shm");

  auto cache = ActionCache::Open(dir);
  ASSERT_TRUE(cache.ok()) << cache.status();
  auto hit = (*cache)->Lookup("key7");
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_FALSE(hit->has_value()) << "an empty, rebuilt cache";
  EXPECT_EQ((*cache)->recoveries(), 1);
  ASSERT_TRUE((*cache)->Put("key7", Result("task7", absl::Now(), {})).ok());
  hit = (*cache)->Lookup("key7");
  ASSERT_TRUE(hit.ok()) << hit.status();
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ((*hit)->task_name, "task7");
  EXPECT_THAT((*hit)->outputs, ElementsAre(Pair("app", "sha256:out-task7")));
  // Nothing of the damaged file came back.
  auto other = (*cache)->Lookup("key8");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->has_value());
  int aside = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().find("action_cache.db.damaged-") == 0) {
      ++aside;
    }
  }
  EXPECT_GE(aside, 1);
}

// Live runs pin what they wrote or read, whatever the retention.
TEST(ActionCachePinsTest, PinnedEntriesSurviveRemovalAndKeepTheirDigests) {
  std::string dir = FreshDir();
  auto cache = ActionCache::Open(dir);
  ASSERT_TRUE(cache.ok());
  absl::Time old = absl::FromUnixSeconds(100);
  ActionResult by_run = Result("a", old, {});
  by_run.run_id = "live";
  ASSERT_TRUE((*cache)->Put("k-run", by_run).ok());
  ASSERT_TRUE((*cache)->Put("k-key", Result("b", old, {})).ok());
  ActionResult by_task = Result("c", old, {});
  by_task.pipeline_name = "other";
  ASSERT_TRUE((*cache)->Put("k-task", by_task).ok());
  ASSERT_TRUE((*cache)->Put("k-none", Result("d", old, {})).ok());
  CachePins pins;
  pins.run_ids = {"live"};
  pins.keys = {"k-key"};
  pins.tasks = {{"other", "c"}};
  auto digests = (*cache)->ReferencedDigests(absl::Now(), pins);
  ASSERT_TRUE(digests.ok());
  EXPECT_THAT(*digests, ::testing::UnorderedElementsAre(
                            "sha256:out-a", "sha256:log-a", "sha256:out-b",
                            "sha256:log-b", "sha256:out-c", "sha256:log-c"));
  auto removed = (*cache)->RemoveOlderThan(absl::Now(), pins);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);
  const std::pair<const char*, const char*> kept[] = {
      {"k-run", "a"}, {"k-key", "b"}, {"k-task", "c"}};
  for (const auto& [k, task] : kept) {
    auto hit = (*cache)->Lookup(k);
    ASSERT_TRUE(hit.ok()) << hit.status();
    ASSERT_TRUE(hit->has_value()) << k;
    EXPECT_EQ((*hit)->task_name, task) << k;
    EXPECT_EQ((*hit)->outputs.at("app"), absl::StrCat("sha256:out-", task));
  }
  auto gone = (*cache)->Lookup("k-none");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_FALSE(gone->has_value()) << "the one unpinned old entry is removed";
}

}  // namespace
}  // namespace kiln::store
