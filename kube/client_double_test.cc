// kube::Client against the API server double (kube/testing): the same
// client the pod executor uses, end to end over HTTP, with the double's
// faults (429, 5xx, 410, dropped watches and log streams).
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/resources.h"
#include "kube/testing/fake_api_server.h"

namespace kiln::kube {
namespace {

using ::testing::ElementsAre;
using testing::FakeApiServer;
using testing::FakeApiServerOptions;
using ::testing::HasSubstr;

nlohmann::json PodManifest(const std::string& name) {
  nlohmann::json pod;
  pod["apiVersion"] = "v1";
  pod["kind"] = "Pod";
  pod["metadata"]["name"] = name;
  pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "kiln";
  nlohmann::json container;
  container["name"] = "task";
  container["image"] = "busybox";
  pod["spec"]["containers"] = nlohmann::json::array({container});
  pod["spec"]["restartPolicy"] = "Never";
  return pod;
}

class ClientDoubleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeApiServerOptions options;
    options.bearer_token = "double-secret";
    options.bookmark_interval = absl::Milliseconds(100);
    auto server = FakeApiServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    std::string kubeconfig =
        absl::StrCat(getenv("TEST_TMPDIR"), "/double-kubeconfig");
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig, "kc").ok());
    LoadOptions load;
    load.kubeconfig_paths = {kubeconfig};
    auto config = LoadClusterConfig(load);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->namespace_name, "kc");
    ClientOptions client_options;
    client_options.initial_backoff = absl::Milliseconds(20);
    client_options.max_backoff = absl::Seconds(2);
    auto client = Client::Create(*config, client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    nlohmann::json ns;
    ns["apiVersion"] = "v1";
    ns["kind"] = "Namespace";
    ns["metadata"]["name"] = "kc";
    ASSERT_TRUE(client_->Create(NamespacesPath(), ns).ok());
  }

  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientDoubleTest, CrudWithReasons) {
  auto created = client_->Create(PodsPath("kc"), PodManifest("p1"));
  ASSERT_TRUE(created.ok()) << created.status();
  std::string rv = (*created)["metadata"]["resourceVersion"];
  EXPECT_FALSE(rv.empty());

  auto again = client_->Create(PodsPath("kc"), PodManifest("p1"));
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  EXPECT_EQ(ApiReason(again.status()), "AlreadyExists");

  nlohmann::json patch;
  patch["metadata"]["labels"]["kiln.dev/run"] = "r1";
  auto patched = client_->Patch(PodPath("kc", "p1"), patch, PatchType::kMerge);
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["metadata"]["labels"]["kiln.dev/run"], "r1");

  // A replace from the stale version conflicts: re-read and retry.
  nlohmann::json stale = *created;
  stale["metadata"]["labels"]["x"] = "y";
  auto conflict = client_->Replace(PodPath("kc", "p1"), stale);
  EXPECT_TRUE(absl::IsAborted(conflict.status())) << conflict.status();
  EXPECT_EQ(ApiReason(conflict.status()), "Conflict");
  auto fresh = client_->Get(PodPath("kc", "p1"));
  ASSERT_TRUE(fresh.ok());
  (*fresh)["metadata"]["labels"]["x"] = "y";
  ASSERT_TRUE(client_->Replace(PodPath("kc", "p1"), *fresh).ok());

  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("p2")).ok());
  ListOptions by_run;
  by_run.label_selector = "kiln.dev/run=r1";
  auto list = client_->List(PodsPath("kc"), by_run);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ((*list)["items"].size(), 1u);
  EXPECT_EQ((*list)["items"][0]["metadata"]["name"], "p1");

  DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_->Delete(PodPath("kc", "p1"), now).ok());
  auto gone = client_->Get(PodPath("kc", "p1"));
  EXPECT_TRUE(absl::IsNotFound(gone.status())) << gone.status();
  EXPECT_EQ(ApiReason(gone.status()), "NotFound");
  EXPECT_TRUE(absl::IsNotFound(client_->Delete(PodPath("kc", "p1"))));
}

TEST_F(ClientDoubleTest, WrongTokenIsUnauthenticated) {
  ClusterConfig config = client_->config();
  config.token = "wrong";
  auto client = Client::Create(config);
  ASSERT_TRUE(client.ok());
  auto got = (*client)->Get(NamespacePath("kc"));
  EXPECT_TRUE(absl::IsUnauthenticated(got.status())) << got.status();
  EXPECT_THAT(got.status().message(), ::testing::Not(HasSubstr("wrong")));
}

TEST_F(ClientDoubleTest, InjectedFaultsAreRetried) {
  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("p")).ok());
  server_->InjectFault("GET", PodPath("kc", "p"), 429, 1, 1);
  server_->InjectFault("GET", PodPath("kc", "p"), 503, 2);
  int64_t before = client_->request_count();
  absl::Time start = absl::Now();
  auto got = client_->Get(PodPath("kc", "p"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(client_->request_count() - before, 4);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(950));  // Retry-After 1

  server_->InjectFault("POST", PodsPath("kc"), 500, 100);
  auto refused = client_->Create(PodsPath("kc"), PodManifest("q"));
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_EQ(server_->request_count(), client_->request_count() + 0)
      << "every request the client sent was served";
}

TEST_F(ClientDoubleTest, WatchSurvivesDropsAndCompaction) {
  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("a")).ok());
  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("b")).ok());
  Mutex mu;
  std::vector<std::string> events;  // "TYPE name phase"
  int bookmarks = 0;
  CancelFlag cancel;
  absl::Status result;
  std::thread watcher([&] {
    WatchOptions options;
    options.label_selector = "app.kubernetes.io/managed-by=kiln";
    options.timeout = absl::Seconds(30);
    result = client_->Watch(
        PodsPath("kc"), options,
        [&](const WatchEvent& e) {
          MutexLock lock(&mu);
          if (e.type == "BOOKMARK") {
            ++bookmarks;
            return true;
          }
          std::string phase;
          if (e.object.contains("status") &&
              e.object["status"].contains("phase")) {
            phase = e.object["status"]["phase"];
          }
          events.push_back(absl::StrCat(
              e.type, " ", e.object["metadata"]["name"].get<std::string>(), " ",
              phase));
          return true;
        },
        &cancel);
  });
  // Stops the watcher however the test ends.
  struct Join {
    CancelFlag* cancel;
    std::thread* thread;
    ~Join() {
      cancel->Cancel();
      if (thread->joinable()) thread->join();
    }
  } join{&cancel, &watcher};
  // Waits for an event starting with `prefix`.
  auto wait_for = [&](const std::string& prefix) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    MutexLock lock(&mu);
    bool seen = mu.AwaitWithDeadline(
        [&] {
          return std::any_of(events.begin(), events.end(),
                             [&](const std::string& e) {
                               return absl::StartsWith(e, prefix);
                             });
        },
        deadline);
    if (!seen) {
      ADD_FAILURE() << "no " << prefix << " in "
                    << ::testing::PrintToString(events);
    }
    return seen;
  };
  auto set_phase = [&](const std::string& name, const std::string& phase) {
    return server_->MutatePod("kc", name, [&](nlohmann::json& pod) {
      pod["status"]["phase"] = phase;
    });
  };
  ASSERT_TRUE(wait_for("ADDED b"));
  ASSERT_TRUE(set_phase("a", "Running").ok());
  ASSERT_TRUE(wait_for("MODIFIED a Running"));

  // A dropped stream: reconnect from the last resourceVersion, no loss.
  server_->DropWatches();
  ASSERT_TRUE(set_phase("a", "Succeeded").ok());
  ASSERT_TRUE(wait_for("MODIFIED a Succeeded"));

  // The history is compacted and the watch expired: relist, and report
  // what changed meanwhile (b modified, c new) — nothing twice.
  server_->CompactHistory();
  server_->ExpireWatches();
  ASSERT_TRUE(set_phase("b", "Failed").ok());
  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("c")).ok());
  ASSERT_TRUE(wait_for("MODIFIED b Failed"));
  ASSERT_TRUE(wait_for("ADDED c"));

  DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_->Delete(PodPath("kc", "a"), now).ok());
  ASSERT_TRUE(wait_for("DELETED a Succeeded"));
  {
    // Bookmarks arrive (every 100 ms here).
    MutexLock lock(&mu);
    mu.AwaitWithDeadline([&] { return bookmarks > 0; },
                         absl::Now() + absl::Seconds(10));
    EXPECT_GT(bookmarks, 0);
  }

  absl::Time start = absl::Now();
  cancel.Cancel();
  watcher.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(result.ok()) << result;
  MutexLock lock(&mu);
  EXPECT_EQ(std::count(events.begin(), events.end(), "MODIFIED a Running"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "MODIFIED a Succeeded"),
            1);
  EXPECT_EQ(std::count_if(events.begin(), events.end(),
                          [](const std::string& e) {
                            return absl::StartsWith(e, "ADDED c");
                          }),
            1);
}

TEST_F(ClientDoubleTest, LogsFollowResumeDropAndCancel) {
  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("p")).ok());
  // Before the container starts: the API says so.
  LogOptions options;
  options.container = "task";
  options.follow = true;
  absl::Status waiting = client_->StreamLog(
      "kc", "p", options, [](absl::string_view) { return true; }, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(waiting)) << waiting;
  EXPECT_THAT(waiting.message(), HasSubstr("waiting to start"));

  absl::Time t0 = absl::FromUnixSeconds(1767225600);
  server_->AppendLog("kc", "p", "task", "one", t0 + absl::Milliseconds(100));
  server_->AppendLog("kc", "p", "task", "two", t0 + absl::Milliseconds(1500));

  Mutex mu;
  std::vector<std::string> lines;
  absl::Status result;
  std::thread follower([&] {
    result = client_->StreamLog(
        "kc", "p", options,
        [&](absl::string_view line) {
          MutexLock lock(&mu);
          lines.emplace_back(line);
          return true;
        },
        nullptr);
  });
  {
    MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithDeadline([&] { return lines.size() == 2; },
                                     absl::Now() + absl::Seconds(10)));
  }
  server_->AppendLog("kc", "p", "task", "three", t0 + absl::Seconds(2));
  server_->EndLog("kc", "p", "task");
  follower.join();
  ASSERT_TRUE(result.ok()) << result;
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(absl::EndsWith(lines[0], " one")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[2], "2026-01-01T00:00:02")) << lines[2];

  // Resumed by time: the API serves whole seconds, so the line of that
  // second repeats ("two" at 00:00:01.5 for a resume at 00:00:01.9).
  options.follow = false;
  options.since_time = t0 + absl::Milliseconds(1900);
  std::vector<std::string> resumed;
  ASSERT_TRUE(client_
                  ->StreamLog(
                      "kc", "p", options,
                      [&](absl::string_view line) {
                        resumed.emplace_back(line);
                        return true;
                      },
                      nullptr)
                  .ok());
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_TRUE(absl::EndsWith(resumed[0], " two"));

  // A second container whose log stays open: dropped, then cancelled.
  ASSERT_TRUE(client_->Create(PodsPath("kc"), PodManifest("q")).ok());
  server_->AppendLog("kc", "q", "task", "x", t0);
  options.since_time.reset();
  options.follow = true;
  std::atomic<int> got{0};
  std::thread dropped([&] {
    result = client_->StreamLog(
        "kc", "q", options,
        [&](absl::string_view) {
          ++got;
          return true;
        },
        nullptr);
  });
  for (int i = 0; i < 200 && got.load() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(25));
  }
  server_->DropLogStreams();
  dropped.join();
  EXPECT_TRUE(absl::IsUnavailable(result)) << result;

  CancelFlag cancel;
  std::thread cancelled([&] {
    result = client_->StreamLog(
        "kc", "q", options, [](absl::string_view) { return true; }, &cancel);
  });
  absl::SleepFor(absl::Milliseconds(300));
  absl::Time start = absl::Now();
  cancel.Cancel();
  cancelled.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_TRUE(result.ok()) << result;
}

}  // namespace
}  // namespace kiln::kube

namespace kiln::kube {
namespace {

TEST_F(ClientDoubleTest, ServerSideApplyCreatesUpdatesAndConflicts) {
  ResourceMapper mapper(client_.get());
  auto res = mapper.Find("v1", "ConfigMap");
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->ObjectPath("kc", "c"), "/api/v1/namespaces/kc/configmaps/c");
  auto deploy = mapper.Find("apps/v1", "Deployment");
  ASSERT_TRUE(deploy.ok()) << deploy.status();
  EXPECT_EQ(deploy->plural, "deployments");
  EXPECT_TRUE(absl::IsNotFound(mapper.Find("apps/v1", "Nope").status()));
  EXPECT_TRUE(absl::IsNotFound(mapper.Find("nope.io/v1", "X").status()));

  nlohmann::json cm = {{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", {{"name", "c"}}},
                       {"data", {{"mode", "fast"}}}};
  const std::string path = res->ObjectPath("kc", "c");
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Apply(path, cm, {}).status()));
  auto created = client_->Apply(path, cm, {"kiln", false});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["metadata"]["managedFields"][0]["manager"], "kiln");

  nlohmann::json other = cm;
  other["data"]["mode"] = "slow";
  auto conflict = client_->Apply(path, other, {"someone-else", false});
  ASSERT_TRUE(absl::IsAborted(conflict.status())) << conflict.status();
  EXPECT_EQ(ApiReason(conflict.status()), "Conflict");
  EXPECT_THAT(std::string(conflict.status().message()),
              HasSubstr("conflict with \"kiln\": .data.mode"));
  auto forced = client_->Apply(path, other, {"someone-else", true});
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ((*forced)["data"]["mode"], "slow");
}

}  // namespace
}  // namespace kiln::kube
