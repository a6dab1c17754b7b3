// `kiln env destroy` and `kiln env gc`: the real binary against the API
// server double, results checked with the real kubectl.
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"
#include "nlohmann/json.hpp"

namespace kiln::cli {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kPipeline[] = R"(name: kcow
environments:
  - {name: preview, kind: preview, namespace: "kcow-${trigger.branch_slug}"}
  - {name: prod, kind: permanent, namespace: kcow-prod}
tasks:
  - {name: d, deploy: {environment: preview, overlay: o}}
options: {unsupported: skip}
)";

class EnvCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube::testing::FakeApiServerOptions o;
    o.namespace_termination = absl::Milliseconds(300);
    auto s = kube::testing::FakeApiServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
    pipeline_ = Write("pipeline.yaml", kPipeline);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::pair<int, std::string> Run(std::vector<std::string> argv) {
    auto r = kube::testing::RunProcess(
        argv, {{"HOME", dir_}, {"KUBECONFIG", "/nonexistent"}},
        absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::make_pair(-1, std::string());
  }
  std::pair<int, std::string> Kiln(std::vector<std::string> args) {
    std::vector<std::string> argv = {"./kiln", "env"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--kubeconfig", kubeconfig_});
    return Run(argv);
  }
  std::pair<int, std::string> Kubectl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig_,
                                     "--cache-dir", dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv);
  }
  // A namespace as kiln would have made it (or by hand: no labels).
  void Namespace(const std::string& name, const json& labels,
                 const std::string& expires) {
    json ns = {{"apiVersion", "v1"},
               {"kind", "Namespace"},
               {"metadata", {{"name", name}, {"labels", labels}}}};
    if (!expires.empty()) {
      ns["metadata"]["annotations"] = {{"kiln.dev/expires-at", expires}};
    }
    auto [code, out] =
        Kubectl({"apply", "-f", Write(name + ".json", ns.dump())});
    ASSERT_EQ(code, 0) << out;
  }
  bool Exists(const std::string& ns) {
    auto [code, out] = Kubectl({"get", "ns", ns, "-o", "json"});
    if (code != 0) {
      EXPECT_THAT(out, HasSubstr("NotFound")) << out;
    }
    return code == 0;
  }

  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::string dir_, kubeconfig_, pipeline_;
};

const json kPreview = {{"kiln.dev/app", "kcow"},
                       {"kiln.dev/environment", "preview"},
                       {"kiln.dev/environment-kind", "preview"}};

TEST_F(EnvCliTest, DestroyDeletesTheBranchPreviewAndRefusesPermanent) {
  Namespace("kcow-feature-x", kPreview, "2099-01-01T00:00:00Z");
  Namespace("kcow-prod", json::object(), "");  // made by hand
  auto [code, out] =
      Kiln({"destroy", "preview", pipeline_, "--branch", "Feature/X"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("destroyed kcow-feature-x"));
  EXPECT_FALSE(Exists("kcow-feature-x"));  // gone when kiln returned

  auto [c2, o2] = Kiln({"destroy", "prod", pipeline_});
  EXPECT_EQ(c2, 1) << o2;
  EXPECT_THAT(o2, HasSubstr("never deleted"));
  EXPECT_TRUE(Exists("kcow-prod"));

  auto [c3, o3] = Kiln({"destroy", "previw", pipeline_, "--branch", "x"});
  EXPECT_EQ(c3, 1) << o3;
  EXPECT_THAT(o3, HasSubstr("no environment 'previw'"));

  // A preview branch whose namespace kiln did not make is refused.
  Namespace("kcow-hand", json::object(), "");
  auto [c4, o4] = Kiln({"destroy", "preview", pipeline_, "--branch", "hand"});
  EXPECT_EQ(c4, 1) << o4;
  EXPECT_THAT(o4, HasSubstr("did not create it as a preview"));
  EXPECT_TRUE(Exists("kcow-hand"));
}

TEST_F(EnvCliTest, GcDeletesExpiredPreviewsOnly) {
  Namespace("kcow-old", kPreview, "2001-01-01T00:00:00Z");
  Namespace("kcow-new", kPreview, "2099-01-01T00:00:00Z");
  json labelled_prod = kPreview;  // even labelled as an expired preview
  Namespace("kcow-prod", labelled_prod, "2001-01-01T00:00:00Z");

  auto [c1, o1] = Kiln({"gc", pipeline_, "--dry-run"});
  EXPECT_EQ(c1, 0) << o1;
  EXPECT_THAT(o1, HasSubstr("would-delete kcow-old"));
  EXPECT_THAT(o1, HasSubstr("kept kcow-new"));
  EXPECT_THAT(o1, HasSubstr("kept kcow-prod"));
  EXPECT_TRUE(Exists("kcow-old"));

  auto [c2, o2] = Kiln({"gc", pipeline_});
  EXPECT_EQ(c2, 0) << o2;
  EXPECT_THAT(o2, HasSubstr("deleted kcow-old"));
  EXPECT_FALSE(Exists("kcow-old"));
  EXPECT_TRUE(Exists("kcow-new"));
  EXPECT_TRUE(Exists("kcow-prod"));
}

TEST_F(EnvCliTest, UsageErrors) {
  EXPECT_EQ(Run({"./kiln", "env"}).first, 2);
  auto [c, o] = Run({"./kiln", "env", "destroyy"});
  EXPECT_EQ(c, 2);
  EXPECT_THAT(o, HasSubstr("unknown env subcommand"));
  auto [ch, oh] = Run({"./kiln", "env", "--help"});
  EXPECT_EQ(ch, 0);
  EXPECT_THAT(oh, HasSubstr("destroy"));
  EXPECT_THAT(oh, HasSubstr("gc"));
}

}  // namespace
}  // namespace kiln::cli
