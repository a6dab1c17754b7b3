#include "engine/store/sqlite.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/store/migrate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

using ::testing::HasSubstr;

std::string FreshPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/sqlite_test";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path + suffix);
  }
  return path;
}

TEST(DatabaseTest, OpensInWalModeWithNormalSync) {
  auto db = Database::Open(FreshPath("wal"));
  ASSERT_TRUE(db.ok()) << db.status();
  auto mode = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->Text(0), "wal");
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA synchronous"), 1);  // NORMAL
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA foreign_keys"), 1);
  // Reads use pread unless asked (Options::mmap_bytes, MappedReads).
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA mmap_size"), 0);
  Database::Options mapped;
  mapped.mmap_bytes = 8 << 20;
  auto all_mapped = Database::Open(FreshPath("mapped"), mapped);
  ASSERT_TRUE(all_mapped.ok()) << all_mapped.status();
  EXPECT_EQ(*(*all_mapped)->QueryInt("PRAGMA mmap_size"), 8 << 20);
}

// Whether this process maps `path` now.
bool Mapped(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() >= path.size() &&
        line.compare(line.size() - path.size(), path.size(), path) == 0) {
      return true;
    }
  }
  return false;
}

TEST(DatabaseTest, BlobsBoundByReferenceAreStoredAndNotKept) {
  auto db = Database::Open(FreshPath("blob_ref"));
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (i INTEGER, b BLOB)").ok());
  for (int i = 0; i < 2; ++i) {
    std::string value(1000 + i, static_cast<char>('a' + i));
    auto insert = (*db)->Prepare("INSERT INTO t VALUES (?1, ?2)");
    ASSERT_TRUE(insert.ok());
    insert->Bind(1, i).BindBlobRef(2, value);
    ASSERT_TRUE(insert->Run().ok());
    // The cached statement gave its binding up: `value` may go.
  }
  {
    // Reused with nothing bound to ?2: NULL, not the freed buffer.
    auto insert = (*db)->Prepare("INSERT INTO t VALUES (?1, ?2)");
    ASSERT_TRUE(insert.ok());
    insert->Bind(1, 2);
    ASSERT_TRUE(insert->Run().ok());
  }
  {
    auto empty = (*db)->Prepare("INSERT INTO t VALUES (3, ?1)");
    ASSERT_TRUE(empty.ok());
    empty->BindBlobRef(1, "");
    ASSERT_TRUE(empty->Run().ok());
  }
  auto read = (*db)->Prepare("SELECT i, b, typeof(b) FROM t ORDER BY i");
  ASSERT_TRUE(read.ok());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(*read->Step());
    EXPECT_EQ(read->Blob(1), std::string(1000 + i, static_cast<char>('a' + i)));
  }
  ASSERT_TRUE(*read->Step());
  EXPECT_EQ(read->Text(2), "null");
  ASSERT_TRUE(*read->Step());
  EXPECT_EQ(read->Text(2), "blob");  // an empty blob, not NULL
  EXPECT_FALSE(*read->Step());
}

TEST(DatabaseTest, MappedReadsMapTheFileForTheirScopeOnly) {
  const std::string path = FreshPath("mapped_reads");
  auto db = Database::Open(path);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (b BLOB)").ok());
  const std::string blob(1 << 20, 'x');
  {
    auto insert = (*db)->Prepare("INSERT INTO t VALUES (?1)");
    ASSERT_TRUE(insert.ok());
    insert->BindBlob(1, blob);
    ASSERT_TRUE(insert->Run().ok());
  }
  // Into the file itself: pages still in the WAL are read with pread.
  ASSERT_TRUE((*db)->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  std::filesystem::path canonical = std::filesystem::canonical(path);
  {
    MappedReads scope(db->get(), 16 << 20);
    EXPECT_EQ(*(*db)->QueryInt("PRAGMA mmap_size"), 16 << 20);
    auto read = (*db)->Prepare("SELECT b FROM t");
    ASSERT_TRUE(read.ok());
    ASSERT_TRUE(*read->Step());
    EXPECT_EQ(read->BlobView(0), blob);
    EXPECT_TRUE(Mapped(canonical.string()));
  }
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA mmap_size"), 0);
  EXPECT_FALSE(Mapped(canonical.string()));
  // Reads after the scope are unchanged, through pread.
  auto again = (*db)->Prepare("SELECT length(b) FROM t");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(*again->Step());
  EXPECT_EQ(again->Int(0), 1 << 20);
  EXPECT_FALSE(Mapped(canonical.string()));
}

TEST(DatabaseTest, BindsAndReadsValues) {
  auto db = Database::Open(FreshPath("values"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (i INTEGER, s TEXT, b BLOB)").ok());
  {
    auto insert = (*db)->Prepare("INSERT INTO t VALUES (?1, ?2, ?3)");
    ASSERT_TRUE(insert.ok());
    insert->Bind(1, int64_t{1} << 40)
        .BindText(2, std::string("a\0b", 3))
        .BindBlob(3, "");
    ASSERT_TRUE(insert->Run().ok());
  }
  {
    auto insert = (*db)->Prepare("INSERT INTO t VALUES (?1, ?2, ?3)");
    ASSERT_TRUE(insert.ok());  // the cached statement, reset and reusable
    insert->Bind(1, -7).BindTextOrNull(2, "").BindNull(3);
    ASSERT_TRUE(insert->Run().ok());
  }
  auto select = (*db)->Prepare("SELECT i, s, b, b IS NULL FROM t ORDER BY i");
  ASSERT_TRUE(select.ok());
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->Int(0), -7);
  EXPECT_TRUE(select->IsNull(1));
  EXPECT_EQ(select->Int(3), 1);
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->Int(0), int64_t{1} << 40);
  EXPECT_EQ(select->Text(1), std::string("a\0b", 3));
  EXPECT_FALSE(select->IsNull(2));  // an empty blob is not NULL
  EXPECT_EQ(select->Blob(2), "");
  EXPECT_FALSE(*select->Step());
}

TEST(DatabaseTest, NestedUseOfOneStatementGetsItsOwnCopy) {
  auto db = Database::Open(FreshPath("nested"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(
      (*db)->Exec("CREATE TABLE t (i); INSERT INTO t VALUES (1), (2)").ok());
  auto outer = (*db)->Prepare("SELECT i FROM t ORDER BY i");
  auto inner = (*db)->Prepare("SELECT i FROM t ORDER BY i");
  ASSERT_TRUE(outer.ok() && inner.ok());
  ASSERT_TRUE(*outer->Step());
  ASSERT_TRUE(*inner->Step());
  ASSERT_TRUE(*inner->Step());
  EXPECT_EQ(outer->Int(0), 1);
  EXPECT_EQ(inner->Int(0), 2);
}

TEST(DatabaseTest, MapsErrorsToStatusCodes) {
  auto db = Database::Open(FreshPath("errors"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (k TEXT PRIMARY KEY)").ok());
  ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES ('a')").ok());
  EXPECT_EQ((*db)->Exec("INSERT INTO t VALUES ('a')").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE((*db)->Prepare("SELEKT").ok());
}

TEST(DatabaseTest, RefusesAFileThatIsNotADatabase) {
  std::string path = FreshPath("garbage");
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("this is certainly not a sqlite database, just some text.....", f);
  std::fclose(f);
  auto db = Database::Open(path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kDataLoss) << db.status();
}

// The -wal and -shm files persist (SQLITE_FCNTL_PERSIST_WAL): a clean close
// checkpoints and truncates the WAL instead of deleting both files, so the
// next process reuses them (the same inodes) instead of creating two files
// per database each time it starts.
TEST(DatabaseTest, KeepsWalFilesBetweenConnections) {
  std::string path = FreshPath("persist");
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(
        (*db)->Exec("CREATE TABLE t (i); INSERT INTO t VALUES (7)").ok());
  }
  struct stat wal {
  }, shm{};
  ASSERT_EQ(stat((path + "-wal").c_str(), &wal), 0) << "no -wal after close";
  ASSERT_EQ(stat((path + "-shm").c_str(), &shm), 0) << "no -shm after close";
  EXPECT_EQ(wal.st_size, 0) << "the close did not checkpoint the WAL";
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    EXPECT_EQ(*(*db)->QueryInt("SELECT i FROM t"), 7);
    ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES (8)").ok());
  }
  struct stat wal2 {
  }, shm2{};
  ASSERT_EQ(stat((path + "-wal").c_str(), &wal2), 0);
  ASSERT_EQ(stat((path + "-shm").c_str(), &shm2), 0);
  EXPECT_EQ(wal2.st_ino, wal.st_ino) << "the -wal file was re-created";
  EXPECT_EQ(shm2.st_ino, shm.st_ino) << "the -shm file was re-created";
  EXPECT_EQ(wal2.st_size, 0);
  // The data is in the main file: it survives losing the (empty) WAL.
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  auto db = Database::Open(path);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM t"), 2);
}

TEST(DatabaseTest, TransactionRollsBackUnlessCommitted) {
  auto db = Database::Open(FreshPath("txn"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (i)").ok());
  {
    Transaction txn(db->get());
    ASSERT_TRUE(txn.Begin().ok());
    ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES (1)").ok());
  }
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM t"), 0);
  {
    Transaction txn(db->get());
    ASSERT_TRUE(txn.Begin().ok());
    ASSERT_TRUE((*db)->Exec("INSERT INTO t VALUES (1)").ok());
    ASSERT_TRUE(txn.Commit().ok());
  }
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM t"), 1);
  EXPECT_FALSE((*db)->InTransaction());
}

TEST(DatabaseTest, SecondWriterWaitsThenTimesOut) {
  std::string path = FreshPath("busy");
  auto first = Database::Open(path);
  Database::Options quick;
  quick.busy_timeout = absl::Milliseconds(100);
  auto second = Database::Open(path, quick);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE((*first)->BeginImmediate().ok());
  absl::Status s = (*second)->BeginImmediate();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  (*first)->Rollback();
  EXPECT_TRUE((*second)->BeginImmediate().ok());
  (*second)->Rollback();
}

// ---- migrations ----

constexpr Migration kThreeSteps[] = {
    {1, "CREATE TABLE a (x INTEGER);"},
    {2, "ALTER TABLE a ADD COLUMN y TEXT NOT NULL DEFAULT 'two';"},
    {3, "CREATE TABLE b (z INTEGER); CREATE INDEX a_by_y ON a(y);"},
};

TEST(MigrateTest, FromVersionZeroToLatest) {
  auto db = Database::Open(FreshPath("migrate0"));
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*SchemaVersion(**db), 0);
  ASSERT_TRUE(Migrate(**db, "test store", kThreeSteps).ok());
  EXPECT_EQ(*SchemaVersion(**db), 3);
  ASSERT_TRUE((*db)
                  ->Exec("INSERT INTO a (x) VALUES (1); INSERT INTO b "
                         "VALUES (2)")
                  .ok());
  // Idempotent.
  ASSERT_TRUE(Migrate(**db, "test store", kThreeSteps).ok());
  EXPECT_EQ(*SchemaVersion(**db), 3);
}

TEST(MigrateTest, FromAnOlderVersionKeepsData) {
  std::string path = FreshPath("migrate1");
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(
        Migrate(**db, "test store", absl::Span<const Migration>(kThreeSteps, 1))
            .ok());
    ASSERT_TRUE((*db)->Exec("INSERT INTO a (x) VALUES (41), (42)").ok());
  }
  auto db = Database::Open(path);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*SchemaVersion(**db), 1);
  ASSERT_TRUE(Migrate(**db, "test store", kThreeSteps).ok());
  EXPECT_EQ(*SchemaVersion(**db), 3);
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM a WHERE y = 'two'"), 2);
}

TEST(MigrateTest, NewerDatabaseIsRefusedClearly) {
  auto db = Database::Open(FreshPath("newer"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("PRAGMA user_version = 9").ok());
  absl::Status s = Migrate(**db, "test store", kThreeSteps);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("newer kiln"));
  EXPECT_THAT(s.message(), HasSubstr("schema 9"));
  EXPECT_EQ(*SchemaVersion(**db), 9);  // untouched
}

TEST(MigrateTest, FailingStepLeavesThePreviousVersion) {
  constexpr Migration kBroken[] = {
      {1, "CREATE TABLE a (x INTEGER);"},
      {2, "CREATE TABLE c (x); THIS IS NOT SQL;"},
  };
  auto db = Database::Open(FreshPath("broken"));
  ASSERT_TRUE(db.ok());
  absl::Status s = Migrate(**db, "test store", kBroken);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("schema 2"));
  EXPECT_EQ(*SchemaVersion(**db), 1);
  // Step 2's first statement was rolled back with it.
  EXPECT_EQ(
      *(*db)->QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE name = 'c'"),
      0);
}

TEST(MigrateTest, RejectsMisnumberedMigrations) {
  constexpr Migration kGap[] = {{1, "SELECT 1;"}, {3, "SELECT 1;"}};
  auto db = Database::Open(FreshPath("gap"));
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(Migrate(**db, "test store", kGap).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MigrateTest, TwoConnectionsMigrateOnce) {
  std::string path = FreshPath("twice");
  auto a = Database::Open(path);
  auto b = Database::Open(path);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(Migrate(**a, "test store", kThreeSteps).ok());
  // b read nothing yet; it must see a's version under the lock, not redo it.
  ASSERT_TRUE(Migrate(**b, "test store", kThreeSteps).ok());
  EXPECT_EQ(*SchemaVersion(**b), 3);
}

TEST(MigrateTest, ConcurrentConnectionsMigrateOnce) {
  // Several connections (as several `kiln` processes would) migrate the same
  // fresh file at the same moment. The steps are not idempotent (CREATE
  // TABLE, ADD COLUMN): a step run twice fails, so every Migrate must
  // succeed and each step must have run once.
  std::string path = FreshPath("concurrent");
  constexpr int kConnections = 4;
  std::vector<std::unique_ptr<Database>> dbs;
  for (int i = 0; i < kConnections; ++i) {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    dbs.push_back(*std::move(db));
  }
  std::atomic<int> ready{0};
  std::vector<absl::Status> results(kConnections);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) {
    threads.emplace_back([&, i] {
      // Start together: every thread waits for all the others.
      ready.fetch_add(1);
      while (ready.load() < kConnections) std::this_thread::yield();
      results[i] = Migrate(*dbs[i], "test store", kThreeSteps);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kConnections; ++i) {
    EXPECT_TRUE(results[i].ok()) << "connection " << i << ": " << results[i];
    EXPECT_EQ(*SchemaVersion(*dbs[i]), 3);
  }
  auto tables = dbs[0]->Prepare(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
      "('a', 'b')");
  ASSERT_TRUE(tables.ok());
  ASSERT_TRUE(*tables->Step());
  EXPECT_EQ(tables->Int(0), 2);
}

}  // namespace
}  // namespace kiln::store
