// DeleteOrphanedPods against the API server double: pods of finished and
// unknown runs go, pods of live runs stay, other kilns' pods and pods kiln
// did not make are never touched, and a doubt deletes nothing more.
#include "executors/kubernetes/orphan_pods.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "executors/kubernetes/pod_names.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/names.h"
#include "kube/testing/fake_api_server.h"

namespace kiln {
namespace {

using json = nlohmann::json;
using kube::testing::FakeApiServer;

constexpr char kNs[] = "ci";

class OrphanPodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube::testing::FakeApiServerOptions options;
    options.initial_namespaces.push_back(kNs);
    auto server = FakeApiServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    kube::ClusterConfig config;
    config.server = server_->url();
    config.context = "fake";
    auto client = kube::Client::Create(config);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    ASSERT_TRUE(client_->Get("/version").ok());
  }

  // A pod as the executor labels it (instance "" = no instance label;
  // managed = false: not kiln's).
  void CreatePod(const std::string& name, const std::string& run_id,
                 const std::string& instance, bool managed = true) {
    json labels = json::object();
    for (const auto& [k, v] : kubernetes::PodLabels(run_id, "build", 1)) {
      labels[k] = v;
    }
    if (!managed) labels.erase(kubernetes::kLabelManagedBy);
    if (!instance.empty()) labels[kubernetes::kLabelInstance] = instance;
    json annotations = json::object();
    for (const auto& [k, v] : kubernetes::PodAnnotations(run_id, "build")) {
      annotations[k] = v;
    }
    json pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", name}, {"labels", labels}, {"annotations", annotations}}},
        {"spec",
         {{"containers",
           json::array({{{"name", "task"}, {"image", "busybox"}}})}}}};
    ASSERT_TRUE(client_->Create(kube::PodsPath(kNs), pod).ok()) << name;
  }

  std::set<std::string> PodNames() {
    auto pods = client_->List(kube::PodsPath(kNs), {});
    EXPECT_TRUE(pods.ok()) << pods.status();
    std::set<std::string> names;
    if (!pods.ok()) return names;
    for (const json& p : (*pods)["items"]) {
      names.insert(p["metadata"]["name"].get<std::string>());
    }
    return names;
  }

  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<kube::Client> client_;
};

TEST_F(OrphanPodsTest, DeletesPodsOfFinishedAndUnknownRunsOnly) {
  CreatePod("finished-a", "run-finished", "me");
  CreatePod("finished-b", "run-finished", "me");
  CreatePod("live", "run-live", "me");
  CreatePod("unknown", "run-unknown", "me");
  CreatePod("other-kiln", "run-finished", "someone-else");
  CreatePod("no-instance", "run-finished", "");
  CreatePod("not-kiln", "run-finished", "me", /*managed=*/false);
  std::map<std::string, int> asked;
  auto sweep = DeleteOrphanedPods(
      *client_, kNs, "me", [&](const std::string& run) -> absl::StatusOr<bool> {
        ++asked[run];
        return run == "run-live";
      });
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  std::vector<std::string> deleted = sweep->deleted;
  std::sort(deleted.begin(), deleted.end());
  EXPECT_EQ(deleted,
            (std::vector<std::string>{"finished-a", "finished-b", "unknown"}));
  EXPECT_EQ(sweep->kept, std::vector<std::string>{"live"});
  EXPECT_EQ(PodNames(), (std::set<std::string>{"live", "other-kiln",
                                               "no-instance", "not-kiln"}));
  // One question per run.
  EXPECT_EQ(asked,
            (std::map<std::string, int>{
                {"run-finished", 1}, {"run-live", 1}, {"run-unknown", 1}}));
}

TEST_F(OrphanPodsTest, AnErrorAboutARunDeletesNothingOfIt) {
  CreatePod("doubt", "run-doubt", "me");
  auto sweep = DeleteOrphanedPods(
      *client_, kNs, "me", [](const std::string&) -> absl::StatusOr<bool> {
        return absl::UnavailableError("run store locked");
      });
  ASSERT_FALSE(sweep.ok());
  EXPECT_NE(sweep.status().message().find("run-doubt"), std::string::npos)
      << sweep.status();
  EXPECT_EQ(PodNames(), std::set<std::string>{"doubt"});
}

TEST_F(OrphanPodsTest, AnEmptyInstanceIsRefused) {
  CreatePod("mine", "run-x", "");
  auto sweep = DeleteOrphanedPods(
      *client_, kNs, "",
      [](const std::string&) -> absl::StatusOr<bool> { return false; });
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PodNames(), std::set<std::string>{"mine"});
}

TEST_F(OrphanPodsTest, AnUnreachableApiServerIsAnError) {
  server_.reset();
  auto sweep = DeleteOrphanedPods(
      *client_, kNs, "me",
      [](const std::string&) -> absl::StatusOr<bool> { return false; });
  EXPECT_FALSE(sweep.ok());
}

}  // namespace
}  // namespace kiln
