// Damaged state never blocks or crashes a run, live runs pin what they use
// against gc, and secret params are never stored in plaintext — through a
// real Engine on a real store (fake executor).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/digest.h"
#include "engine/engine.h"
#include "engine/gc/garbage_collector.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "engine/store/sqlite.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

int CountWithInfix(const std::string& dir, const std::string& infix) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(infix) != std::string::npos) ++n;
  }
  return n;
}

// build writes out/app; gate blocks until released (the first time);
// test reads the app and prints $TOKEN.
v1::Pipeline Pipeline(bool with_gate) {
  v1::Pipeline p;
  p.set_name("state");
  auto* param = p.add_params();
  param->set_name("token");
  param->set_default_("none");
  v1::Task* build = p.add_tasks();
  build->set_name("build");
  build->mutable_run()->add_command("make");
  build->mutable_run()->add_command("build");
  build->add_inputs()->set_artifact("source");
  auto* out = build->add_outputs();
  out->set_artifact("app");
  out->add_paths("out/app");
  std::string before_test = "build";
  if (with_gate) {
    v1::Task* gate = p.add_tasks();
    gate->set_name("gate");
    gate->add_needs("build");
    gate->mutable_run()->add_command("gate");
    before_test = "gate";
  }
  v1::Task* test = p.add_tasks();
  test->set_name("test");
  test->add_needs(before_test);
  test->mutable_run()->add_command("make");
  test->mutable_run()->add_command("test");
  test->add_inputs()->set_artifact("app");
  auto* env = test->mutable_run()->add_env();
  env->set_name("TOKEN");
  env->set_value("${params.token}");
  return p;
}

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base);
    store_ = base + "/store";
    source_ = base + "/src";
    WriteFile(source_ + "/src/main.c", "int main() { return 0; }\n");
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("make", [](const v1::ExecRequest& req) {
      FakeScript s;
      const std::string target = req.argv(1);
      if (target == "build") {
        s.Do([](const v1::ExecRequest& r) {
          WriteFile(r.workspace() + "/out/app",
                    "binary of " + ReadFile(r.workspace() + "/src/main.c"));
        });
      }
      if (target == "test") {
        if (req.env().count("TOKEN")) s.Stdout(req.env().at("TOKEN"));
      }
      return s;
    });
    executor_->On("gate", [this](const v1::ExecRequest&) {
      FakeScript s;
      s.Do([this](const v1::ExecRequest&) {
        gate_entered_.Notify();
        gate_release_.WaitForNotificationWithTimeout(absl::Seconds(60));
      });
      return s;
    });
  }

  void TearDown() override {
    if (!gate_release_.HasBeenNotified()) gate_release_.Notify();
    engine_.reset();
  }

  void OpenEngine() {
    engine_.reset();
    EngineOptions options;
    options.store_dir = store_;
    options.executor = executor_;
    options.retry_backoff = absl::Milliseconds(1);
    auto engine = Engine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  std::shared_ptr<RunHandle> Start(v1::Pipeline p, v1::Trigger t = {}) {
    RunRequest req;
    req.pipeline = std::move(p);
    req.trigger = std::move(t);
    req.source_dir = source_;
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : nullptr;
  }

  v1::Run Run(v1::Pipeline p, v1::Trigger t = {}) {
    auto handle = Start(std::move(p), std::move(t));
    if (handle == nullptr) return {};
    return handle->Wait();
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  size_t Executed() { return executor_->requests().size(); }

  std::string store_, source_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
  absl::Notification gate_entered_, gate_release_;
};

// Used to recurse without end in the key loader (a segfault on every run).
TEST_F(StateTest, DamagedSecretKeyIsReplacedWithAWarningNotACrash) {
  for (const std::string& bad : {std::string(), std::string(5, 'x')}) {
    SCOPED_TRACE(bad.size());
    engine_.reset();
    fs::remove_all(store_);
    WriteFile(store_ + "/secret.key", bad);
    OpenEngine();
    v1::Run run = Run(Pipeline(false));
    EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
    EXPECT_EQ(fs::file_size(store_ + "/secret.key"), 32u);
    EXPECT_EQ(CountWithInfix(store_, "secret.key.damaged-"), 1);
  }
}

// A garbage or half-garbage action_cache.db used to fail every run until
// it was deleted by hand; it is only a cache.
TEST_F(StateTest, DamagedActionCacheIsMovedAsideAndRebuilt) {
  for (bool keep_header : {false, true}) {
    SCOPED_TRACE(keep_header);
    engine_.reset();
    fs::remove_all(store_);
    OpenEngine();
    ASSERT_EQ(Run(Pipeline(false)).state(), v1::RUN_SUCCEEDED);
    engine_.reset();  // closes (and checkpoints) the database
    const std::string db = store_ + "/action_cache.db";
    std::string bytes = ReadFile(db);
    ASSERT_GT(bytes.size(), 200u);
    for (size_t i = keep_header ? 100 : 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<char>(0xA5 ^ (i * 7));
    }
    WriteFile(db, bytes);
    fs::remove(db + "-wal");
    fs::remove(db + "-shm");
    OpenEngine();
    size_t before = Executed();
    v1::Run run = Run(Pipeline(false));
    EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
    EXPECT_EQ(Executed(), before + 2) << "an empty cache: both tasks rerun";
    EXPECT_EQ(CountWithInfix(store_, "action_cache.db.damaged-"), 1);
    // The rebuilt cache works: the next run hits.
    before = Executed();
    run = Run(Pipeline(false));
    EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
    EXPECT_EQ(Executed(), before);
    EXPECT_EQ(Task(run, "build").state(), v1::TASK_CACHED);
  }
}

// An index entry naming another (valid) artifact's archive used to make
// every run fail in the consumer; now the entry is dropped at the cache
// check and the producer runs again in the same run. Both with the
// archive's by-archive record and without (an older store: verified by
// extraction).
TEST_F(StateTest, IndexEntryNamingAnotherArchiveIsDroppedAndProducerReruns) {
  for (bool drop_records : {false, true}) {
    SCOPED_TRACE(drop_records);
    engine_.reset();
    fs::remove_all(store_);
    OpenEngine();
    v1::Run first = Run(Pipeline(false));
    ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED) << first.reason();
    auto artifacts = cas::ArtifactStore::Open(store_);
    ASSERT_TRUE(artifacts.ok());
    auto app = cas::Digest::Parse(Task(first, "build").outputs().at("app"));
    ASSERT_TRUE(app.ok());
    auto app_archive = (*artifacts)->ArchiveOf(*app);
    ASSERT_TRUE(app_archive.ok());
    // Another valid artifact's archive: the source's.
    auto listed = (*artifacts)->ListArtifacts();
    ASSERT_TRUE(listed.ok());
    std::string other;
    for (const auto& [tree, archive] : *listed) {
      if (tree != *app) other = archive.ToString();
    }
    ASSERT_FALSE(other.empty());
    std::string hex = app->Hex();
    std::string index =
        store_ + "/artifacts/" + hex.substr(0, 2) + "/" + hex.substr(2);
    auto other_digest = cas::Digest::Parse(other);
    ASSERT_TRUE(other_digest.ok());
    WriteFile(index,
              absl::StrCat(
                  other, " ",
                  fs::file_size((*artifacts)->blobs().BlobPath(*other_digest)),
                  "\n"));
    if (drop_records) fs::remove_all(store_ + "/artifacts/by-archive");

    size_t before = Executed();
    v1::Run run = Run(Pipeline(false));
    EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
    EXPECT_EQ(Task(run, "build").state(), v1::TASK_SUCCEEDED)
        << "the producer runs again";
    EXPECT_EQ(Executed(), before + 1) << "test itself stays a cache hit";
    auto repaired = (*artifacts)->ArchiveOf(*app);
    ASSERT_TRUE(repaired.ok());
    EXPECT_EQ(*repaired, *app_archive);
    // And the store is healthy again: everything hits.
    before = Executed();
    run = Run(Pipeline(false));
    EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
    EXPECT_EQ(Executed(), before);
  }
}

// A task's action-cache entry records the archive of each output as it was
// verified then, and a later hit checks an index entry still naming it
// (one read, one stat) instead of verifying it again: with every
// by-archive record gone, the hit does not re-verify (which would extract
// the archive and write the record back). An entry without the archive
// (as an older kiln wrote it) takes the full check, and rewrites the
// record.
TEST_F(StateTest, AHitTrustsTheArchiveItsEntryRecordedAndOnlyThat) {
  OpenEngine();
  v1::Run first = Run(Pipeline(false));
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED) << first.reason();
  auto app = cas::Digest::Parse(Task(first, "build").outputs().at("app"));
  ASSERT_TRUE(app.ok());
  auto app_archive = engine_->store().artifacts().ArchiveOf(*app);
  ASSERT_TRUE(app_archive.ok());
  auto entry = engine_->store().cache().LatestForTask("state", "build");
  ASSERT_TRUE(entry.ok() && entry->has_value()) << entry.status();
  ASSERT_EQ((*entry)->archives.count("app"), 1u);
  EXPECT_EQ((*entry)->archives.at("app").digest, app_archive->ToString());
  EXPECT_EQ((*entry)->archives.at("app").size, app_archive->size());
  const std::string record =
      store_ + "/artifacts/by-archive/" + app_archive->Hex();
  ASSERT_TRUE(fs::exists(record));

  fs::remove_all(store_ + "/artifacts/by-archive");
  size_t before = Executed();
  v1::Run second = Run(Pipeline(false));
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED) << second.reason();
  EXPECT_EQ(Task(second, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), before);
  EXPECT_FALSE(fs::exists(record)) << "the hit verified the archive again";

  // The same entry without its recorded archive (as an entry recorded
  // before schema 2 has none, in its table or its hit column): verified in
  // full.
  engine_.reset();
  {
    auto db = store::Database::Open(store_ + "/action_cache.db");
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Exec("DELETE FROM action_archives;"
                           " UPDATE actions SET hit = NULL")
                    .ok());
  }
  OpenEngine();
  v1::Run third = Run(Pipeline(false));
  ASSERT_EQ(third.state(), v1::RUN_SUCCEEDED) << third.reason();
  EXPECT_EQ(Task(third, "build").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed(), before);
  EXPECT_TRUE(fs::exists(record)) << "verified by extraction, and recorded";
}

// `cache gc --keep-days 0` during a run used to delete the run's fresh
// cache entries. A live run pins what it wrote and read.
TEST_F(StateTest, GcDuringALiveRunKeepsItsEntries) {
  OpenEngine();
  auto handle = Start(Pipeline(true));
  ASSERT_NE(handle, nullptr);
  ASSERT_TRUE(gate_entered_.WaitForNotificationWithTimeout(absl::Seconds(60)));
  // build has finished and recorded its entry; gate is running.
  auto mid_or = engine_->GetRun(handle->id());
  ASSERT_TRUE(mid_or.ok());
  v1::Run mid = *mid_or;
  const std::string build_key = Task(mid, "build").cache_key();
  ASSERT_FALSE(build_key.empty());
  gc::GcOptions options;
  options.keep = absl::ZeroDuration();
  options.grace = absl::ZeroDuration();
  auto report = gc::CollectGarbage(store_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  auto entry = engine_->store().cache().Lookup(build_key);
  ASSERT_TRUE(entry.ok());
  EXPECT_TRUE(entry->has_value()) << "gc removed a live run's cache entry";
  gate_release_.Notify();
  v1::Run run = handle->Wait();
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  // Every entry the run wrote survived: the next run hits everywhere.
  size_t before = Executed();
  v1::Run again = Run(Pipeline(true));
  EXPECT_EQ(again.state(), v1::RUN_SUCCEEDED) << again.reason();
  EXPECT_EQ(Executed(), before);
  for (const char* t : {"build", "gate", "test"}) {
    EXPECT_EQ(Task(again, t).state(), v1::TASK_CACHED) << t;
  }
  // Finished runs pin nothing: the same gc now collects.
  report = gc::CollectGarbage(store_, options);
  ASSERT_TRUE(report.ok());
  EXPECT_GT(report->cache_entries_deleted, 0);
}

bool StoreBytesContain(const std::string& store, const std::string& needle) {
  for (const auto& e : fs::recursive_directory_iterator(store)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, "runs.db") &&
        ReadFile(e.path()).find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// Secret params used to sit in plaintext in runs.db.
TEST_F(StateTest, SecretParamsAreSealedAtRestAndResumeStillWorks) {
  OpenEngine();
  v1::Pipeline p = Pipeline(false);
  p.mutable_params(0)->set_secret(true);
  const std::string secret = "tok-5ecr3t-4a7f91";
  v1::Trigger t;
  (*t.mutable_params())["token"] = secret;
  // A recorded, unfinished run (as after a crash) resumed by the engine.
  auto created = engine_->store().runs().CreateRun(p, t, source_, "");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(StoreBytesContain(store_, secret));
  auto stored = engine_->GetRun(created->run_id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->trigger().params().at("token"), store::kSecretPlaceholder);

  OpenEngine();  // a new engine, as after a restart
  auto resumed = engine_->Resume(created->run_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  v1::Run run = (*resumed)->Wait();
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  bool saw = false;
  for (const auto& r : executor_->requests()) {
    if (r.env().count("TOKEN")) saw = r.env().at("TOKEN") == secret;
  }
  EXPECT_TRUE(saw) << "the resumed run got the secret back";

  // A submitted run and its retry too.
  run = Run(p, t);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  auto retry = engine_->Retry(run.id());
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ((*retry)->Wait().state(), v1::RUN_SUCCEEDED);
  engine_.reset();
  EXPECT_FALSE(StoreBytesContain(store_, secret));

  // The sealing key: owner-only, not the HMAC key.
  struct stat st;
  ASSERT_EQ(stat((store_ + "/params.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(ReadFile(store_ + "/params.key"), ReadFile(store_ + "/secret.key"));

  // A replaced key: resuming is a clear error, not garbage params.
  auto created2 = [&] {
    auto runs = store::RunStore::Open(store_);
    EXPECT_TRUE(runs.ok());
    return (*runs)->CreateRun(p, t, source_, "");
  }();
  ASSERT_TRUE(created2.ok());
  WriteFile(store_ + "/params.key", std::string(32, 'z'));
  OpenEngine();
  auto bad = engine_->Resume(created2->run_id);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("params.key"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace kiln
