// cli::Client (kiln_client.h): the in-process and the gRPC implementation
// pass the same cases, with the same results and status codes.
#include "engine/cli/kiln_client.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/service/client.h"
#include "engine/service/server.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kPipeline[] = R"(name: demo
tasks:
  - name: build
    inputs: [source]
    run: {command: [make, build]}
)";

constexpr char kProducing[] = R"(name: produce
tasks:
  - name: build
    run: {command: [make, app]}
    outputs: [{artifact: app, paths: [out]}]
  - name: test
    needs: [build]
    run: {command: [make, test]}
)";

constexpr char kHanging[] = R"(name: slow
tasks:
  - name: wait
    run: {command: [make, hang]}
)";

// An engine (running tasks on a fake executor) on a fresh store, and a
// source directory; the implementations below add the client.
class ClientEnv {
 public:
  ClientEnv() {
    const std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/kc_", name);
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/src");
    std::ofstream(dir_ + "/src/main.c") << "int main() { return 0; }\n";
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("make", [](const v1::ExecRequest& req) {
      FakeScript s;
      s.Stdout("made " + req.argv(1));
      if (req.argv(1) == "hang") s.Delay(absl::Seconds(60));
      if (req.argv(1) == "app") {
        s.WriteFile("out/bin/app", "#!/bin/sh\necho hi\n");
        s.WriteFile("out/README", "the app\n");
      }
      return s;
    });
    EngineOptions options;
    options.store_dir = dir_ + "/store";
    options.executor = executor_;
    auto engine = Engine::Create(options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (engine.ok()) engine_ = std::move(*engine);
  }
  virtual ~ClientEnv() {
    if (engine_ != nullptr) engine_->Shutdown(absl::Seconds(1));
  }

  const std::string& dir() const { return dir_; }
  Engine* engine() const { return engine_.get(); }
  FakeExecutor& executor() const { return *executor_; }
  virtual Client& client() = 0;

 protected:
  std::string dir_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

class LocalEnv : public ClientEnv {
 public:
  LocalEnv() : client_(NewLocalClient(engine())) {}
  Client& client() override { return *client_; }

 private:
  std::unique_ptr<Client> client_;
};

class RemoteEnv : public ClientEnv {
 public:
  RemoteEnv() {
    // TEST_TMPDIR is too long for a socket path: bind relative to it.
    EXPECT_EQ(chdir(dir().c_str()), 0);
    service::ServerOptions options;
    options.listen = "unix:s.sock";
    auto server = service::KilnServer::Start(engine(), options);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return;
    server_ = std::move(*server);
    service::ClientOptions connect;
    connect.server = server_->address();
    client_ = NewRemoteClient(std::make_shared<service::KilnClient>(connect),
                              dir() + "/client-store");
  }
  ~RemoteEnv() override {
    client_.reset();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }
  Client& client() override { return *client_; }

 private:
  std::unique_ptr<service::KilnServer> server_;
  std::unique_ptr<Client> client_;
};

template <typename Env>
class ClientTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::string> Submit(const std::string& yaml) {
    absl::StatusOr<UploadedSource> source =
        env_.client().UploadSource(env_.dir() + "/src");
    if (!source.ok()) return source.status();
    SubmitSpec spec;
    spec.yaml = yaml;
    spec.filename = "pipeline.yaml";
    spec.source = *source;
    return env_.client().Submit(spec);
  }

  Env env_;
};

using Implementations = ::testing::Types<LocalEnv, RemoteEnv>;
TYPED_TEST_SUITE(ClientTest, Implementations);

TYPED_TEST(ClientTest, SubmitWatchListAndRetry) {
  Client& client = this->env_.client();
  absl::StatusOr<std::string> id = this->Submit(kPipeline);
  ASSERT_TRUE(id.ok()) << id.status();
  std::vector<v1::RunEvent> events;
  absl::StatusOr<v1::RunState> state =
      client.Watch(*id, 0, [&](const v1::RunEvent& e) { events.push_back(e); });
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().run_state().state(), v1::RUN_SUCCEEDED);
  bool saw_log = false;
  for (const auto& e : events) {
    saw_log |= e.has_log() && e.log().text() == "made build";
  }
  EXPECT_TRUE(saw_log);
  // Watching again from the middle resumes after that sequence.
  std::vector<uint64_t> seqs;
  state = client.Watch(
      *id, 2, [&](const v1::RunEvent& e) { seqs.push_back(e.sequence()); });
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs.front(), 3u);
  EXPECT_EQ(seqs.size(), events.size() - 2);

  absl::StatusOr<v1::Run> run = client.GetRun(*id);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->tasks_size(), 1);
  EXPECT_EQ(run->tasks(0).state(), v1::TASK_SUCCEEDED);

  absl::StatusOr<std::string> again = client.Retry(*id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(*again, *id);
  state = client.Watch(*again, 0, [](const v1::RunEvent&) {});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED);
  run = client.GetRun(*again);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->tasks(0).state(), v1::TASK_CACHED);
  EXPECT_EQ(this->env_.executor().requests().size(), 1u);

  store::RunFilter filter;
  filter.pipeline_name = "demo";
  absl::StatusOr<store::RunPage> page = client.ListRuns(filter, 1, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->runs.size(), 1u);
  EXPECT_EQ(page->runs[0].id(), *again);  // newest first
  ASSERT_FALSE(page->next_page_token.empty());
  page = client.ListRuns(filter, 10, page->next_page_token);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->runs.size(), 1u);
  EXPECT_EQ(page->runs[0].id(), *id);
  filter.pipeline_name = "other";
  page = client.ListRuns(filter, 10, "");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->runs.empty());
}

TYPED_TEST(ClientTest, CancelStopsARun) {
  Client& client = this->env_.client();
  absl::StatusOr<std::string> id = this->Submit(kHanging);
  ASSERT_TRUE(id.ok()) << id.status();
  // Cancelled once its task runs (the first TASK_RUNNING event).
  bool cancelled = false;
  absl::Status cancel;
  absl::StatusOr<v1::RunState> state =
      client.Watch(*id, 0, [&](const v1::RunEvent& e) {
        if (!cancelled && e.has_task_state() &&
            e.task_state().state() == v1::TASK_RUNNING) {
          cancelled = true;
          cancel = client.Cancel(*id, "enough");
        }
      });
  ASSERT_TRUE(cancelled);
  EXPECT_TRUE(cancel.ok()) << cancel;
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_CANCELLED);
}

TYPED_TEST(ClientTest, FailuresHaveTheSameCodes) {
  Client& client = this->env_.client();
  EXPECT_TRUE(absl::IsNotFound(client.GetRun("no-such-run").status()));
  EXPECT_TRUE(absl::IsNotFound(
      client.Watch("no-such-run", 0, [](const v1::RunEvent&) {}).status()));
  EXPECT_TRUE(absl::IsNotFound(client.Retry("no-such-run").status()));
  EXPECT_TRUE(absl::IsNotFound(client.Cancel("no-such-run", "x")));
  EXPECT_TRUE(absl::IsInvalidArgument(
      client.ListRuns(store::RunFilter(), 10, "bogus token").status()));

  // An invalid pipeline: every diagnostic, placed in the file.
  absl::StatusOr<std::string> id = this->Submit(R"(name: bad
tasks:
  - name: build
    executor: nowhere
    run: {command: [make, build]}
)");
  ASSERT_TRUE(absl::IsInvalidArgument(id.status())) << id.status();
  EXPECT_TRUE(absl::StrContains(id.status().message(),
                                "pipeline.yaml:4:15: task 'build': unknown "
                                "executor 'nowhere'"))
      << id.status();
  EXPECT_TRUE(this->env_.executor().requests().empty());
}

// Reads a whole file ("" if it cannot).
std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TYPED_TEST(ClientTest, OutputsOnEventsListedAndUnstashed) {
  Client& client = this->env_.client();
  absl::StatusOr<std::string> id = this->Submit(kProducing);
  ASSERT_TRUE(id.ok()) << id.status();
  std::string event_digest;
  absl::StatusOr<v1::RunState> state =
      client.Watch(*id, 0, [&](const v1::RunEvent& e) {
        if (e.has_task_state() && e.task_state().task() == "build" &&
            e.task_state().state() == v1::TASK_SUCCEEDED) {
          auto it = e.task_state().outputs().find("app");
          if (it != e.task_state().outputs().end()) event_digest = it->second;
        }
      });
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(*state, v1::RUN_SUCCEEDED);
  // The task-finished event carries the output's tree digest, the same
  // the run records.
  ASSERT_FALSE(event_digest.empty());
  absl::StatusOr<v1::Run> run = client.GetRun(*id);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->tasks(0).outputs().at("app"), event_digest);

  absl::StatusOr<std::vector<ArtifactInfo>> listed =
      client.ListArtifacts(*id, "");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);  // `test` outputs nothing
  const ArtifactInfo app = (*listed)[0];
  EXPECT_EQ(app.task, "build");
  EXPECT_EQ(app.name, "app");
  EXPECT_EQ(app.tree.ToString(), event_digest);
  EXPECT_TRUE(app.stored);
  EXPECT_EQ(app.files, 2);
  EXPECT_EQ(app.file_bytes, 18 + 8);
  EXPECT_EQ(app.directories, 2);  // out, out/bin
  EXPECT_GT(app.archive.size(), 0);
  listed = client.ListArtifacts(*id, "test");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());

  const std::string dest = this->env_.dir() + "/dest";
  absl::StatusOr<ArtifactInfo> got =
      client.UnstashOutput(*id, "build", "app", dest, false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->tree, app.tree);
  EXPECT_EQ(Slurp(dest + "/out/bin/app"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(Slurp(dest + "/out/README"), "the app\n");

  // A non-empty target is refused unless replaced explicitly.
  absl::Status again =
      client.UnstashOutput(*id, "build", "app", dest, false).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  std::ofstream(dest + "/extra") << "x";
  ASSERT_TRUE(client.UnstashOutput(*id, "build", "app", dest, true).ok());
  EXPECT_FALSE(fs::exists(dest + "/extra"));
  EXPECT_EQ(Slurp(dest + "/out/README"), "the app\n");

  // A symlink at the target is never followed: refused, or with replace
  // the link itself is replaced and what it pointed at is untouched.
  const std::string victim = this->env_.dir() + "/victim";
  fs::create_directories(victim);
  std::ofstream(victim + "/keep") << "keep";
  const std::string link = this->env_.dir() + "/link";
  fs::create_directory_symlink(victim, link);
  EXPECT_FALSE(client.UnstashOutput(*id, "build", "app", link, false).ok());
  ASSERT_TRUE(client.UnstashOutput(*id, "build", "app", link, true).ok());
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(Slurp(link + "/out/README"), "the app\n");
  EXPECT_EQ(Slurp(victim + "/keep"), "keep");
  EXPECT_FALSE(fs::exists(victim + "/out"));
}

TYPED_TEST(ClientTest, HostileOutputRequestsAreRefused) {
  Client& client = this->env_.client();
  absl::StatusOr<std::string> id = this->Submit(kProducing);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(client.Watch(*id, 0, [](const v1::RunEvent&) {}).ok());
  const std::string dest = this->env_.dir() + "/dest";
  EXPECT_TRUE(
      absl::IsNotFound(client.ListArtifacts("no-such-run", "").status()));
  EXPECT_TRUE(absl::IsNotFound(client.ListArtifacts(*id, "nope").status()));
  EXPECT_TRUE(absl::IsNotFound(
      client.UnstashOutput("no-such-run", "build", "app", dest, false)
          .status()));
  EXPECT_TRUE(absl::IsNotFound(
      client.UnstashOutput(*id, "nope", "app", dest, false).status()));
  EXPECT_TRUE(absl::IsNotFound(
      client.UnstashOutput(*id, "build", "nope", dest, false).status()));
  // Names are looked up, never used as paths.
  for (const char* name : {"../../../etc", "/etc/passwd", "app/../app", ".."}) {
    absl::Status st =
        client.UnstashOutput(*id, "build", name, dest, false).status();
    EXPECT_TRUE(absl::IsNotFound(st)) << name << ": " << st;
    st = client.UnstashOutput(*id, name, "app", dest, false).status();
    EXPECT_TRUE(absl::IsNotFound(st)) << name << ": " << st;
  }
  EXPECT_FALSE(fs::exists(dest));
}

}  // namespace
}  // namespace kiln::cli
