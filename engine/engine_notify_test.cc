// Pipeline notifications end to end: a real Engine (fake executor) posts
// to a receiver this test starts on 127.0.0.1 (port 0).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "base/testing/files.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "engine/pipeline/loader.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string TempDir(const std::string& name) {
  return test_files::TempDir("notify_test_", name);
}

// Answers each POST under /hooks/ with `status`, or (hang) holds it until
// the receiver is destroyed; keeps paths and bodies.
class Receiver {
 public:
  explicit Receiver(int status, bool hang = false)
      : status_(status), hang_(hang) {
    server_.Post(R"(/hooks/.*)", [this](const httplib::Request& req,
                                        httplib::Response& res) {
      MutexLock lock(&mu_);
      paths_.push_back(req.path);
      bodies_.push_back(req.body);
      if (hang_) {
        // Held until the receiver stops (at most 30s: the test stays
        // bounded even if the engine never gave up).
        mu_.AwaitWithDeadline(
            [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; },
            absl::Now() + absl::Seconds(30));
      }
      res.status = status_;
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) absl::SleepFor(absl::Milliseconds(1));
  }
  ~Receiver() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, "/hooks/", path);
  }
  std::vector<std::string> bodies() {
    MutexLock lock(&mu_);
    return bodies_;
  }
  std::vector<std::string> paths() {
    MutexLock lock(&mu_);
    return paths_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  const int status_;
  const bool hang_;
  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> paths_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
};

class EngineNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    store_ = TempDir("store_" + name);
    source_ = TempDir("src_" + name);
    executor_ = std::make_shared<FakeExecutor>();
    // `make fail` exits 2; any other target succeeds.
    executor_->On("make", [](const v1::ExecRequest& req) {
      FakeScript s;
      s.Stdout("make " + req.argv(1));
      if (req.argv(1) == "fail") s.Exit(2);
      return s;
    });
    engine_ = engine_testing::MakeEngine(
        store_, executor_, [](EngineOptions& options) {
          options.public_url = "https://kiln.example/";
        });
    ASSERT_NE(engine_, nullptr);
  }

  // A pipeline with one task, `make ${params.target}`, and `notify`.
  v1::Pipeline Pipeline(const std::string& notify,
                        const std::string& extra_params = "") {
    pipeline::LoadedPipeline loaded = pipeline::LoadPipelineText(
        absl::StrCat("name: demo\n"
                     "params:\n"
                     "  - {name: target, default: ok}\n",
                     extra_params,
                     "tasks:\n"
                     "  - {name: build, run: {command: [make, "
                     "\"${params.target}\"]}}\n"
                     "notify:\n",
                     notify),
        "p.yaml");
    EXPECT_TRUE(loaded.ok()) << pipeline::JoinDiagnostics(loaded.errors);
    return loaded.pipeline;
  }

  v1::Run Run(const v1::Pipeline& p, const std::string& target,
              const std::string& branch = "main",
              std::vector<v1::RunEvent>* events = nullptr,
              std::map<std::string, std::string> params = {}) {
    RunRequest req;
    req.pipeline = p;
    req.source_dir = source_;
    req.trigger.set_branch(branch);
    req.trigger.set_revision("0123456789abcdef");
    (*req.trigger.mutable_params())["target"] = target;
    for (const auto& [k, v] : params) (*req.trigger.mutable_params())[k] = v;
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    v1::Run result = (*run)->Wait();
    if (events != nullptr) {
      (*run)->Subscribe(
          0, [events](const v1::RunEvent& e) { events->push_back(e); });
    }
    return result;
  }

  static std::vector<v1::NotificationSent> Sent(
      const std::vector<v1::RunEvent>& events) {
    std::vector<v1::NotificationSent> out;
    for (const auto& e : events) {
      if (e.has_notification()) out.push_back(e.notification());
    }
    return out;
  }

  std::string store_, source_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

constexpr char kTemplate[] =
    R"('{"text": "${pipeline.name} ${run.state}", "run": "${run.id}",)"
    R"( "state": "${run.state}", "on": "${notify.on}",)"
    R"( "branch": "${trigger.branch}", "rev": "${trigger.revision}",)"
    R"( "failed": "${failed_tasks}", "url": "${run.url}",)"
    R"( "target": "${params.target}"}')";

TEST_F(EngineNotifyTest, PostsFailedSucceededFixedAndBroken) {
  Receiver receiver(200);
  v1::Pipeline p =
      Pipeline(absl::StrCat("  - url: ", receiver.Url("team"), "\n",
                            "    on: [failed, succeeded, fixed, broken]\n",
                            "    template: ", kTemplate, "\n"));

  std::vector<v1::RunEvent> events;
  v1::Run failed = Run(p, "fail", "main", &events);
  ASSERT_EQ(failed.state(), v1::RUN_FAILED);
  ASSERT_EQ(receiver.bodies().size(), 1u);
  nlohmann::json body = nlohmann::json::parse(receiver.bodies()[0]);
  EXPECT_EQ(body["text"], "demo failed");
  EXPECT_EQ(body["run"], failed.id());
  EXPECT_EQ(body["state"], "failed");
  EXPECT_EQ(body["on"], "failed");  // no earlier run: not "broken"
  EXPECT_EQ(body["branch"], "main");
  EXPECT_EQ(body["rev"], "0123456789abcdef");
  EXPECT_EQ(body["failed"], "build");
  EXPECT_EQ(body["url"],
            absl::StrCat("https://kiln.example/run?id=", failed.id()));
  EXPECT_EQ(body["target"], "fail");
  // One event, recorded before the final state, with the status.
  std::vector<v1::NotificationSent> sent = Sent(events);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].delivered());
  EXPECT_EQ(sent[0].http_status(), 200);
  EXPECT_EQ(sent[0].attempts(), 1u);
  EXPECT_EQ(sent[0].on(), "failed");
  EXPECT_THAT(sent[0].target(), HasSubstr("127.0.0.1"));
  EXPECT_THAT(sent[0].target(), Not(HasSubstr("team")));
  ASSERT_GE(events.size(), 2u);
  EXPECT_TRUE(events[events.size() - 2].has_notification());
  EXPECT_EQ(events.back().run_state().state(), v1::RUN_FAILED);

  // Fail then succeed on the same branch: fixed.
  v1::Run fixed = Run(p, "ok");
  ASSERT_EQ(fixed.state(), v1::RUN_SUCCEEDED);
  ASSERT_EQ(receiver.bodies().size(), 2u);
  body = nlohmann::json::parse(receiver.bodies()[1]);
  EXPECT_EQ(body["on"], "fixed");
  EXPECT_EQ(body["state"], "succeeded");
  EXPECT_EQ(body["failed"], "");

  // Succeed again: just succeeded.
  ASSERT_EQ(Run(p, "ok").state(), v1::RUN_SUCCEEDED);
  ASSERT_EQ(receiver.bodies().size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(receiver.bodies()[2])["on"], "succeeded");

  // A failure on another branch is compared with that branch only.
  ASSERT_EQ(Run(p, "fail", "feature/x").state(), v1::RUN_FAILED);
  ASSERT_EQ(receiver.bodies().size(), 4u);
  body = nlohmann::json::parse(receiver.bodies()[3]);
  EXPECT_EQ(body["on"], "failed");
  EXPECT_EQ(body["branch"], "feature/x");

  // Succeeded before on main, fails now: broken.
  ASSERT_EQ(Run(p, "fail").state(), v1::RUN_FAILED);
  ASSERT_EQ(receiver.bodies().size(), 5u);
  EXPECT_EQ(nlohmann::json::parse(receiver.bodies()[4])["on"], "broken");
}

TEST_F(EngineNotifyTest, DefaultBodyIsSlackText) {
  Receiver receiver(200);
  v1::Pipeline p = Pipeline(
      absl::StrCat("  - {url: \"", receiver.Url("x"), "\", on: failed}\n"));
  v1::Run run = Run(p, "fail");
  ASSERT_EQ(run.state(), v1::RUN_FAILED);
  ASSERT_EQ(receiver.bodies().size(), 1u);
  nlohmann::json body = nlohmann::json::parse(receiver.bodies()[0]);
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body.size(), 1u);
  std::string text = body["text"];
  EXPECT_THAT(text, HasSubstr(absl::StrCat("demo: run ", run.id(), " failed")));
  EXPECT_THAT(text, HasSubstr("on main (0123456789ab)"));
  EXPECT_THAT(text, HasSubstr("failed: build"));
  EXPECT_THAT(text, HasSubstr("https://kiln.example/run?id=" + run.id()));
}

TEST_F(EngineNotifyTest, OnFailedDoesNotPostOnSuccess) {
  Receiver receiver(200);
  v1::Pipeline p = Pipeline(
      absl::StrCat("  - {url: \"", receiver.Url("x"), "\", on: [failed]}\n"));
  std::vector<v1::RunEvent> events;
  ASSERT_EQ(Run(p, "ok", "main", &events).state(), v1::RUN_SUCCEEDED);
  EXPECT_TRUE(receiver.bodies().empty());
  EXPECT_TRUE(Sent(events).empty());
}

TEST_F(EngineNotifyTest, HangingReceiverDoesNotHoldOrFailTheRun) {
  Receiver receiver(200, /*hang=*/true);
  v1::Pipeline p =
      Pipeline(absl::StrCat("  - {url: \"", receiver.Url("x"),
                            "\", on: succeeded, timeout: 1s, retries: 2}\n"));
  std::vector<v1::RunEvent> events;
  absl::Time start = absl::Now();
  v1::Run run = Run(p, "ok", "main", &events);
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  EXPECT_LT(took, absl::Seconds(4));
  EXPECT_EQ(receiver.bodies().size(), 1u);
  std::vector<v1::NotificationSent> sent = Sent(events);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(sent[0].delivered());
  // The 1s budget ran out during the first attempt (or a last sliver).
  EXPECT_THAT(sent[0].error(),
              ::testing::AnyOf(HasSubstr("no delivery within 1s"),
                               HasSubstr("Timeout was reached")));
  EXPECT_LE(sent[0].attempts(), 2u);
  auto recorded = engine_->GetRun(run.id());
  ASSERT_TRUE(recorded.ok());
  EXPECT_EQ(recorded->state(), v1::RUN_SUCCEEDED);
}

TEST_F(EngineNotifyTest, ServerErrorIsRetriedThenReported) {
  Receiver receiver(500);
  v1::Pipeline p =
      Pipeline(absl::StrCat("  - {url: \"", receiver.Url("x"),
                            "\", on: succeeded, timeout: 20s, retries: 2}\n"));
  std::vector<v1::RunEvent> events;
  v1::Run run = Run(p, "ok", "main", &events);
  EXPECT_EQ(run.state(), v1::RUN_SUCCEEDED);
  EXPECT_EQ(receiver.bodies().size(), 3u);  // 1 + 2 retries
  std::vector<v1::NotificationSent> sent = Sent(events);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(sent[0].delivered());
  EXPECT_EQ(sent[0].http_status(), 500);
  EXPECT_EQ(sent[0].attempts(), 3u);
  EXPECT_THAT(sent[0].error(), HasSubstr("gave up after 3 attempts"));
}

// Every byte of every file under `dir`.
std::string AllBytes(const std::string& dir) {
  std::string out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    std::error_code ec;
    if (!entry.is_regular_file(ec)) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    out.append(std::istreambuf_iterator<char>(in),
               std::istreambuf_iterator<char>());
  }
  return out;
}

TEST_F(EngineNotifyTest, SecretUrlIsNeverShownOrStored) {
  const std::string token = "T0ken-5ecret-9f8e7d";
  for (int status : {200, 500}) {
    SCOPED_TRACE(status);
    Receiver receiver(status);
    v1::Pipeline p = Pipeline(
        "  - {url: \"${params.hook}\", on: [failed, succeeded], retries: 1}\n",
        "  - {name: hook, secret: true}\n");
    std::vector<v1::RunEvent> events;
    v1::Run run = Run(p, "fail", "main", &events,
                      {{"hook", receiver.Url("services/" + token)}});
    ASSERT_EQ(run.state(), v1::RUN_FAILED);
    // The receiver got it at the secret path ...
    ASSERT_FALSE(receiver.paths().empty());
    EXPECT_EQ(receiver.paths()[0], "/hooks/services/" + token);
    EXPECT_THAT(receiver.bodies()[0], Not(HasSubstr(token)));
    // ... and nothing else shows it: events, the run, the list.
    std::vector<v1::NotificationSent> sent = Sent(events);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].delivered(), status == 200);
    EXPECT_EQ(sent[0].target(), "(secret)");
    if (status == 500) {
      EXPECT_THAT(sent[0].error(), HasSubstr("(secret)"));
      EXPECT_THAT(sent[0].error(), Not(HasSubstr("127.0.0.1")));
    }
    for (const auto& e : events) {
      EXPECT_THAT(e.DebugString(), Not(HasSubstr(token)));
    }
    auto got = engine_->GetRun(run.id());
    ASSERT_TRUE(got.ok());
    EXPECT_THAT(got->DebugString(), Not(HasSubstr(token)));
    auto listed = engine_->ListRuns({}, 100, "");
    ASSERT_TRUE(listed.ok());
    for (const auto& r : listed->runs) {
      EXPECT_THAT(r.DebugString(), Not(HasSubstr(token)));
    }
  }
  // The store's files (runs.db and its WAL, logs, cache) hold no trace.
  std::string bytes = AllBytes(store_);
  EXPECT_GT(bytes.size(), 0u);
  EXPECT_EQ(bytes.find(token), std::string::npos);
}

}  // namespace
}  // namespace kiln
