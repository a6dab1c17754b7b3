// Prune against the API server double: only what kiln applied for this
// environment, in its namespace, not owned by another object, goes.
#include "engine/deploy/prune.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"
#include "kube/testing/fake_api_server.h"

namespace kiln::deploy {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = kube::testing::FakeApiServer::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    std::string kubeconfig = std::string(getenv("TEST_TMPDIR")) + "/kc";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig, "default").ok());
    kube::LoadOptions lo;
    lo.kubeconfig_paths = {kubeconfig};
    lo.in_cluster_fallback = false;
    auto config = kube::LoadClusterConfig(lo);
    ASSERT_TRUE(config.ok()) << config.status();
    auto client = kube::Client::Create(*config);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    for (const char* ns : {"shop", "other"}) {
      ASSERT_TRUE(
          client_
              ->Create(kube::NamespacesPath(), {{"apiVersion", "v1"},
                                                {"kind", "Namespace"},
                                                {"metadata", {{"name", ns}}}})
              .ok());
    }
  }

  // A ConfigMap server-side-applied by `manager` with `labels`.
  std::string ConfigMap(const std::string& ns, const std::string& name,
                        const std::string& manager, json labels,
                        json extra_meta = json::object()) {
    json meta = {{"name", name}, {"namespace", ns}, {"labels", labels}};
    meta.update(extra_meta);
    json obj = {{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", meta},
                {"data", {{"k", "v"}}}};
    std::string path = absl::StrCat(kube::ConfigMapsPath(ns), "/", name);
    auto applied = client_->Apply(path, obj, {manager, false});
    EXPECT_TRUE(applied.ok()) << applied.status();
    return path;
  }
  bool Exists(const std::string& path) { return client_->Get(path).ok(); }
  static json Kiln(const std::string& env) {
    return {{"kiln.dev/environment", env},
            {"app.kubernetes.io/managed-by", "kiln"}};
  }

  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::unique_ptr<kube::Client> client_;
  std::vector<std::string> log_;
};

TEST_F(PruneTest, DeletesOnlyKilnsDroppedObjectsOfTheEnvironment) {
  std::string kept = ConfigMap("shop", "kept", "kiln", Kiln("preview"));
  std::string dropped = ConfigMap("shop", "dropped", "kiln", Kiln("preview"));
  std::string stage = ConfigMap("shop", "stage", "kiln", Kiln("stage"));
  std::string unlabelled = ConfigMap("shop", "plain", "kiln", json::object());
  std::string lookalike =
      ConfigMap("shop", "lookalike", "someone", Kiln("preview"));
  std::string owned =
      ConfigMap("shop", "owned", "kiln", Kiln("preview"),
                {{"ownerReferences",
                  {{{"apiVersion", "apps/v1"},
                    {"kind", "Deployment"},
                    {"name", "web"},
                    {"uid", "0b1f2c3d-0000-4000-8000-000000000001"}}}}});
  std::string elsewhere =
      ConfigMap("other", "dropped", "kiln", Kiln("preview"));

  DeployTarget target;
  target.environment = "preview";
  target.namespace_name = "shop";
  AppliedObject applied;
  applied.api_version = "v1";
  applied.kind = "ConfigMap";
  applied.name = "kept";
  applied.namespace_name = "shop";
  applied.path = kept;
  auto pruned = Prune(client_.get(), target, {applied},
                      [this](const std::string& l) { log_.push_back(l); });
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  ASSERT_EQ(pruned->size(), 1u);
  EXPECT_EQ((*pruned)[0].name, "dropped");
  EXPECT_THAT(log_, ElementsAre(HasSubstr("ConfigMap/dropped pruned")));
  EXPECT_FALSE(Exists(dropped));
  for (const std::string& p :
       {kept, stage, unlabelled, lookalike, owned, elsewhere}) {
    EXPECT_TRUE(Exists(p)) << p;
  }
  // Nothing left to prune: a second call deletes nothing.
  pruned = Prune(client_.get(), target, {applied}, [](const std::string&) {});
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_TRUE(pruned->empty());
}

TEST_F(PruneTest, AnEnvironmentThatIsNoLabelValueIsRefused) {
  std::string a = ConfigMap("shop", "a", "kiln", Kiln("preview"));
  DeployTarget target;
  target.environment = "preview,app.kubernetes.io/managed-by!=x";
  target.namespace_name = "shop";
  auto pruned = Prune(client_.get(), target, {}, [](const std::string&) {});
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Exists(a));
}

}  // namespace
}  // namespace kiln::deploy
