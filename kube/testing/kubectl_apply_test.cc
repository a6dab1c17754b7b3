// Honesty check for server-side apply: the real kubectl (on PATH) runs
// `apply --server-side` against the double; conflicts, forcing, the
// managedFields it records and fields released by a later apply.
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"
#include "kube/testing/server_side_apply.h"

namespace kiln::kube::testing {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "nginx:1"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
)";

class KubectlApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = FakeApiServer::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::pair<int, std::string> Kubectl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig_,
                                     "--cache-dir", dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunProcess(argv, {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}},
                        absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::make_pair(-1, std::string());
  }
  json Deployment() {
    auto d =
        server_->GetObject("/apis/apps/v1/namespaces/default/deployments/web");
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : json();
  }
  std::vector<std::string> Owned(const json& obj, const std::string& manager) {
    for (const json& e : obj["metadata"]["managedFields"]) {
      if (e["manager"] == manager) return FieldPaths(e["fieldsV1"]);
    }
    return {};
  }

  std::unique_ptr<FakeApiServer> server_;
  std::string dir_, kubeconfig_;
};

TEST_F(KubectlApplyTest, ServerSideApplyCreatesAndRecordsTheManager) {
  auto [rc, out] = Kubectl({"apply", "--server-side", "--field-manager", "kiln",
                            "-f", Write("app.yaml", kApp)});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("deployment.apps/web serverside-applied"));
  EXPECT_THAT(out, HasSubstr("service/web serverside-applied"));
  EXPECT_THAT(out,
              HasSubstr("ingress.networking.k8s.io/web serverside-applied"));
  json d = Deployment();
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_THAT(Owned(d, "kiln"), Contains(".spec.replicas"));
  std::tie(rc, out) = Kubectl(
      {"get", "deployment", "web", "-o", "json", "--show-managed-fields"});
  ASSERT_EQ(rc, 0) << out;
  json got = json::parse(out);
  ASSERT_EQ(got["metadata"]["managedFields"].size(), 1u);
  EXPECT_EQ(got["metadata"]["managedFields"][0]["operation"], "Apply");
}

TEST_F(KubectlApplyTest, ConflictWithClientSideApplyUnlessForced) {
  std::string v1 = Write("v1.yaml", kApp);
  auto [rc, out] = Kubectl({"apply", "-f", v1});
  ASSERT_EQ(rc, 0) << out;
  std::string v2 = Write(
      "v2.yaml", absl::StrReplaceAll(kApp, {{"replicas: 3", "replicas: 1"}}));
  std::tie(rc, out) =
      Kubectl({"apply", "--server-side", "--field-manager", "kiln", "-f", v2});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("Apply failed with 1 conflict: conflict with "
                             "\"kubectl-client-side-apply\" using apps/v1: "
                             ".spec.replicas"));
  EXPECT_EQ(Deployment()["spec"]["replicas"], 3);
  std::tie(rc, out) = Kubectl({"apply", "--server-side", "--force-conflicts",
                               "--field-manager", "kiln", "-f", v2});
  ASSERT_EQ(rc, 0) << out;
  json d = Deployment();
  EXPECT_EQ(d["spec"]["replicas"], 1);
  EXPECT_THAT(Owned(d, "kiln"), Contains(".spec.replicas"));
  EXPECT_THAT(Owned(d, "kubectl-client-side-apply"),
              Not(Contains(".spec.replicas")));
}

TEST_F(KubectlApplyTest, FieldsNoLongerAppliedAreReleased) {
  std::string v1 = Write("v1.yaml", kApp);
  auto [rc, out] =
      Kubectl({"apply", "--server-side", "--field-manager", "kiln", "-f", v1});
  ASSERT_EQ(rc, 0) << out;
  std::string v2 =
      Write("v2.yaml", absl::StrReplaceAll(kApp, {{"  replicas: 3\n", ""}}));
  std::tie(rc, out) =
      Kubectl({"apply", "--server-side", "--field-manager", "kiln", "-f", v2});
  ASSERT_EQ(rc, 0) << out;
  json d = Deployment();
  EXPECT_FALSE(d["spec"].contains("replicas")) << d.dump();
  EXPECT_THAT(Owned(d, "kiln"), Not(Contains(".spec.replicas")));
}

}  // namespace
}  // namespace kiln::kube::testing
