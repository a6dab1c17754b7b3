// Engine-side file operations on task- and client-made trees: a symlink in
// such a tree is never followed by the engine (which runs as root outside
// the sandbox), modes do not depend on the umask, temp directories never
// outlive a failure, and what stash leaves out does not reach the key.
// Each "host" directory below stands for a host directory such as
// /etc/cron.d: it lives outside the store, the source and every workspace.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "base/testing/files.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  return test_files::TempDir("engine_paths_", name);
}

using test_files::ReadFile;
using test_files::WriteFile;

// Every entry below `dir`, relative, sorted ("" if dir is missing).
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(it->path().lexically_relative(dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> KilnTemps(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& e : Listing(dir)) {
    if (e.find(".kiln-") != std::string::npos) out.push_back(e);
  }
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

v1::Task* AddRun(v1::Pipeline* p, const std::string& name,
                 const std::string& command) {
  v1::Task* t = p->add_tasks();
  t->set_name(name);
  t->mutable_run()->add_command(command);
  return t;
}

void AddOutput(v1::Task* t, const std::string& artifact,
               const std::string& path) {
  auto* out = t->add_outputs();
  out->set_artifact(artifact);
  out->add_paths(path);
}

void AddInput(v1::Task* t, const std::string& artifact,
              const std::string& path = "") {
  auto* in = t->add_inputs();
  in->set_artifact(artifact);
  in->set_path(path);
}

class EnginePathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = TempDir("store_" + Name());
    source_ = TempDir("src_" + Name());
    host_ = TempDir("host_" + Name());
    WriteFile(host_ + "/keep", "host file\n");
    WriteFile(host_ + "/existing/file", "host data\n");
    host_before_ = Listing(host_);
    executor_ = std::make_shared<FakeExecutor>();
    // make-link: the task's output is a symlink to the host directory.
    executor_->On("make-link", [this](const v1::ExecRequest&) {
      FakeScript s;
      std::string host = host_;
      s.Do([host](const v1::ExecRequest& r) {
        fs::create_symlink(host, r.workspace() + "/sub");
      });
      return s;
    });
    // make-file: the task's output is an ordinary file.
    executor_->On("make-file", [](const v1::ExecRequest&) {
      FakeScript s;
      s.Do([](const v1::ExecRequest& r) {
        WriteFile(r.workspace() + "/evil", "* * * * * root payload\n");
      });
      return s;
    });
    // look: records what the workspace holds and its modes.
    executor_->On("look", [this](const v1::ExecRequest&) {
      FakeScript s;
      s.Do([this](const v1::ExecRequest& r) {
        MutexLock lock(&mu_);
        seen_ = Listing(r.workspace());
        workspace_mode_ = ModeOf(r.workspace());
        modes_.clear();
        for (const std::string& e : seen_) {
          modes_[e] = ModeOf(r.workspace() + "/" + e);
        }
      });
      return s;
    });
    Open();
  }

  void Open() {
    engine_.reset();
    engine_ = engine_testing::MakeEngine(
        store_, executor_, [](EngineOptions& options) {
          options.retry_backoff = absl::Milliseconds(1);
        });
    ASSERT_NE(engine_, nullptr);
  }

  void TearDown() override {
    engine_.reset();
    fs::remove_all(store_);
    fs::remove_all(source_);
    fs::remove_all(host_);
  }

  std::string Name() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  v1::Run Run(v1::Pipeline p) {
    RunRequest req;
    req.pipeline = std::move(p);
    req.source_dir = source_;
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    return (*run)->Wait();
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  size_t Executed(const std::string& argv0) {
    size_t n = 0;
    for (const auto& r : executor_->requests()) n += r.argv(0) == argv0;
    return n;
  }

  void ExpectHostUntouched() {
    EXPECT_EQ(Listing(host_), host_before_);
    EXPECT_EQ(ReadFile(host_ + "/existing/file"), "host data\n");
  }

  std::string store_, source_, host_;
  std::vector<std::string> host_before_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
  Mutex mu_;
  std::vector<std::string> seen_;
  mode_t workspace_mode_ = 0;
  std::map<std::string, mode_t> modes_;
};

// Task A outputs `sub -> host`, task B a file; C takes A at the root and B
// at `sub`. Merging B must not follow A's symlink into the host.
TEST_F(EnginePathsTest, InputPathThroughATaskSymlinkNeverWritesToTheHost) {
  v1::Pipeline p;
  p.set_name("write-through");
  AddOutput(AddRun(&p, "a", "make-link"), "a", "sub");
  AddOutput(AddRun(&p, "b", "make-file"), "b", "evil");
  v1::Task* c = AddRun(&p, "c", "look");
  c->add_needs("a");
  c->add_needs("b");
  AddInput(c, "a");
  AddInput(c, "b", "sub");
  v1::Run run = Run(p);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "c").state(), v1::TASK_FAILED);
  EXPECT_NE(Task(run, "c").reason().find("symlink"), std::string::npos)
      << Task(run, "c").reason();
  EXPECT_EQ(Executed("look"), 0u) << "the task must not start";
  ExpectHostUntouched();
  EXPECT_TRUE(KilnTemps(store_ + "/work").empty());

  // The other order: B's directory first, then A's symlink in its place.
  v1::Pipeline q = p;
  q.mutable_tasks(2)->clear_inputs();
  AddInput(q.mutable_tasks(2), "b", "sub");
  AddInput(q.mutable_tasks(2), "a");
  run = Run(q);
  EXPECT_EQ(Task(run, "c").state(), v1::TASK_FAILED);
  EXPECT_NE(Task(run, "c").reason().find("two inputs both provide sub"),
            std::string::npos)
      << Task(run, "c").reason();
  ExpectHostUntouched();
}

// An output path through a symlink is refused, not collected from the host.
TEST_F(EnginePathsTest, OutputPathThroughASymlinkIsNotCollected) {
  v1::Pipeline p;
  p.set_name("collect");
  AddOutput(AddRun(&p, "a", "make-link"), "leak", "sub/keep");
  v1::Run run = Run(p);
  EXPECT_EQ(Task(run, "a").state(), v1::TASK_FAILED);
  EXPECT_NE(Task(run, "a").reason().find("symlink"), std::string::npos)
      << Task(run, "a").reason();
  ExpectHostUntouched();
}

v1::Pipeline UnstashPipeline(const std::string& to) {
  v1::Pipeline p;
  p.set_name("unstash");
  v1::Task* t = p.add_tasks();
  t->set_name("deliver");
  t->mutable_unstash()->set_artifact("source");
  t->mutable_unstash()->set_to(to);
  return p;
}

// A source (e.g. submitted by a client) holds `out -> host`: unstash `to:`
// below it creates nothing in the host and replaces nothing there.
TEST_F(EnginePathsTest, UnstashToThroughASourceSymlinkNeverTouchesTheHost) {
  WriteFile(source_ + "/app/bin", "binary\n");
  fs::create_symlink(host_, source_ + "/out");
  for (const std::string to : {"out/X", "out/existing", "out/existing/deep"}) {
    v1::Run run = Run(UnstashPipeline(to));
    EXPECT_EQ(run.state(), v1::RUN_FAILED) << to;
    EXPECT_NE(Task(run, "deliver").reason().find("symlink"), std::string::npos)
        << to << ": " << Task(run, "deliver").reason();
    ExpectHostUntouched();
    EXPECT_TRUE(KilnTemps(source_).empty()) << to;
  }
  // Unstashing onto the symlink itself replaces the link, not its target.
  v1::Run run = Run(UnstashPipeline("out"));
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_FALSE(fs::is_symlink(source_ + "/out"));
  EXPECT_EQ(ReadFile(source_ + "/out/app/bin"), "binary\n");
  ExpectHostUntouched();
}

TEST_F(EnginePathsTest, UnstashCreatesAndReplacesBelowTheSource) {
  WriteFile(source_ + "/app/bin", "binary\n");
  WriteFile(source_ + "/dist/app/stale", "old\n");
  v1::Run run = Run(UnstashPipeline("dist/app"));
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(ReadFile(source_ + "/dist/app/app/bin"), "binary\n");
  EXPECT_FALSE(fs::exists(source_ + "/dist/app/stale"));
  run = Run(UnstashPipeline("new/deep/dir"));
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_EQ(ReadFile(source_ + "/new/deep/dir/app/bin"), "binary\n");
  EXPECT_TRUE(KilnTemps(source_).empty());
}

// A failing unstash leaves no temp directory; stale ones of dead processes
// are swept (next to the target, and in the store at start-up).
TEST_F(EnginePathsTest, UnstashLeavesNoTempsAndSweepsDeadOnes) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  std::string stale =
      absl::StrCat(".kiln-unstash-", child, "-0123456789abcdef");
  WriteFile(source_ + "/dist/" + stale + "/f", "x");
  WriteFile(source_ + "/dist/app.kiln-unstash-" + std::to_string(child) + "/f",
            "x");
  WriteFile(store_ + "/work/old-run/" + stale + "/f", "x");
  WriteFile(store_ + "/sources/" + stale + "/f", "x");
  Open();  // start-up sweep
  EXPECT_FALSE(fs::exists(store_ + "/work/old-run/" + stale));
  EXPECT_FALSE(fs::exists(store_ + "/sources/" + stale));

  WriteFile(source_ + "/blocker", "a file, not a directory\n");
  v1::Run run = Run(UnstashPipeline("blocker/x"));
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  run = Run(UnstashPipeline("dist/app"));
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  // (dist/app itself holds a copy of the source, stale entries included.)
  for (const auto& e : fs::directory_iterator(source_ + "/dist")) {
    EXPECT_EQ(e.path().filename().string().find(".kiln-"), std::string::npos)
        << e.path();
  }
  for (const auto& e : fs::directory_iterator(source_)) {
    EXPECT_EQ(e.path().filename().string().find(".kiln-"), std::string::npos)
        << e.path();
  }
  EXPECT_EQ(ReadFile(source_ + "/blocker"), "a file, not a directory\n");
}

// stash `from:` that is a symlink to a host directory is not followed.
TEST_F(EnginePathsTest, StashFromASymlinkDoesNotReadTheHost) {
  fs::create_symlink(host_, source_ + "/loot");
  fs::create_directories(source_ + "/real");
  fs::create_symlink(host_, source_ + "/real/inner");
  v1::Pipeline p;
  p.set_name("stash");
  v1::Task* s = p.add_tasks();
  s->set_name("take");
  s->mutable_stash()->set_artifact("loot");
  s->mutable_stash()->set_from("loot");
  v1::Run run = Run(p);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_NE(Task(run, "take").reason().find("symlink"), std::string::npos)
      << Task(run, "take").reason();
  // A symlink inside the stashed tree travels as a symlink.
  s->mutable_stash()->set_from("real/inner");
  EXPECT_EQ(Run(p).state(), v1::RUN_FAILED);
  s->mutable_stash()->set_from("real");
  v1::Task* look = AddRun(&p, "look", "look");
  look->add_needs("take");
  AddInput(look, "loot");
  run = Run(p);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  MutexLock lock(&mu_);
  EXPECT_EQ(seen_, std::vector<std::string>{"inner"});
}

TEST_F(EnginePathsTest, StashExcludeLeavesFilesOutOfContentAndKey) {
  WriteFile(source_ + "/docs/a.md", "a\n");
  WriteFile(source_ + "/docs/b.tmp", "scratch 1\n");
  WriteFile(source_ + "/docs/cache/x", "x\n");
  WriteFile(source_ + "/docs/sub/c.tmp", "scratch\n");
  v1::Pipeline p;
  p.set_name("exclude");
  v1::Task* s = p.add_tasks();
  s->set_name("take");
  s->mutable_stash()->set_artifact("docs");
  s->mutable_stash()->set_from("docs");
  s->mutable_stash()->add_exclude("*.tmp");
  s->mutable_stash()->add_exclude("/cache");
  v1::Task* look = AddRun(&p, "look", "look");
  look->add_needs("take");
  AddInput(look, "docs");
  v1::Run run = Run(p);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  {
    MutexLock lock(&mu_);
    EXPECT_EQ(seen_, (std::vector<std::string>{"a.md", "sub"}));
  }
  ASSERT_EQ(Executed("look"), 1u);
  // An excluded file changes: the consumer is still a cache hit.
  WriteFile(source_ + "/docs/b.tmp", "scratch 2, longer\n");
  WriteFile(source_ + "/docs/cache/x", "y\n");
  run = Run(p);
  EXPECT_EQ(Task(run, "look").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed("look"), 1u);
  // An included one changes: it runs again.
  WriteFile(source_ + "/docs/a.md", "a, edited\n");
  run = Run(p);
  EXPECT_EQ(Task(run, "look").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Executed("look"), 2u);
}

// The pipeline file is not part of `source`: editing it (a hint of another
// task) keeps a consumer of `source` a cache hit.
TEST_F(EnginePathsTest, PipelineFileEditKeepsSourceConsumersCached) {
  WriteFile(source_ + "/src/main.c", "int main;\n");
  WriteFile(source_ + "/pipeline.yaml", "tasks: []  # version 1\n");
  v1::Pipeline p;
  p.set_name("hint");
  p.set_file("pipeline.yaml");
  AddInput(AddRun(&p, "look", "look"), "source");
  AddRun(&p, "other", "make-file");
  v1::Run run = Run(p);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  {
    MutexLock lock(&mu_);
    EXPECT_EQ(seen_, (std::vector<std::string>{"src", "src/main.c"}));
  }
  // Another task's hint changes, and so does the file.
  p.mutable_tasks(1)->mutable_hints()->set_retries(3);
  WriteFile(source_ + "/pipeline.yaml", "tasks: []  # version 2, retries\n");
  run = Run(p);
  EXPECT_EQ(Task(run, "look").state(), v1::TASK_CACHED);
  EXPECT_EQ(Executed("look"), 1u);
  // A pipeline that asks for its file gets it (and then every edit counts).
  p.mutable_options()->set_source_includes_pipeline_file(true);
  run = Run(p);
  EXPECT_EQ(Task(run, "look").state(), v1::TASK_SUCCEEDED);
  MutexLock lock(&mu_);
  EXPECT_EQ(seen_,
            (std::vector<std::string>{"pipeline.yaml", "src", "src/main.c"}));
}

// Rendering reads files by path: a symlink in the artifact that could lead
// out of it is refused, so a host file never lands in the manifests.
TEST_F(EnginePathsTest, RenderRefusesSymlinksLeadingOutOfTheArtifact) {
  WriteFile(host_ + "/secret.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: host}\n"
            "data: {k: HOSTSECRET}\n");
  host_before_ = Listing(host_);
  WriteFile(source_ + "/deploy/kustomization.yaml", "resources: [leak.yaml]\n");
  fs::create_symlink(host_ + "/secret.yaml", source_ + "/deploy/leak.yaml");
  v1::Pipeline p;
  p.set_name("render");
  v1::Task* r = p.add_tasks();
  r->set_name("manifests");
  r->mutable_render()->mutable_kustomization()->set_artifact("source");
  r->mutable_render()->mutable_kustomization()->set_path("deploy");
  v1::Run run = Run(p);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_NE(Task(run, "manifests").reason().find("symlink deploy/leak.yaml"),
            std::string::npos)
      << Task(run, "manifests").reason();
  EXPECT_TRUE(Task(run, "manifests").outputs().empty());
  ExpectHostUntouched();
}

// Under umask 077 the engine still creates 0755 directories for the task
// (the workspace and extracted input directories).
TEST_F(EnginePathsTest, ModesDoNotDependOnTheUmask) {
  WriteFile(source_ + "/src/main.c", "int main;\n");
  WriteFile(source_ + "/src/deep/x.sh", "#!/bin/sh\n");
  fs::permissions(source_ + "/src/deep/x.sh", fs::perms::owner_all |
                                                  fs::perms::group_read |
                                                  fs::perms::others_read);
  v1::Pipeline p;
  p.set_name("umask");
  AddInput(AddRun(&p, "look", "look"), "source", "in/put");
  mode_t old = umask(077);
  v1::Run run = Run(p);
  umask(old);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  MutexLock lock(&mu_);
  EXPECT_EQ(workspace_mode_, 0755u);
  EXPECT_EQ(modes_["in"], 0755u);
  EXPECT_EQ(modes_["in/put"], 0755u);
  EXPECT_EQ(modes_["in/put/src"], 0755u);
  EXPECT_EQ(modes_["in/put/src/deep"], 0755u);
  EXPECT_EQ(modes_["in/put/src/main.c"], 0644u);
  EXPECT_EQ(modes_["in/put/src/deep/x.sh"], 0755u);
}

}  // namespace
}  // namespace kiln
