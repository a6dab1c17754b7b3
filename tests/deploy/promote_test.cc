// Promotion by digest end to end: the real `kiln run` deploys stage, then
// prod with `promote: {from: stage}` from manifests rendered with other
// image references, against the API server double; the real kubectl reads
// what prod got. Also: promoting from an earlier run (`run:`), a failed
// stage deployment and an unknown repository refused before any write,
// and the needs check at load time.
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_fixture.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Stage and prod render their own kustomizations (stage/, prod/); prod
// promotes stage's deployment of this run.
constexpr char kPipeline[] = R"(name: shop
tasks:
  - name: manifests-stage
    render: {kustomization: stage}
  - name: manifests-prod
    render: {kustomization: prod}
  - name: deploy-stage
    needs: [manifests-stage]
    deploy: {environment: stage, kind: preview, manifests: manifests-stage, namespace: shop-stage}
  - name: deploy-prod
    needs: [deploy-stage, manifests-prod]
    deploy:
      environment: prod
      kind: preview
      manifests: manifests-prod
      namespace: shop-prod
      promote: {from: stage}
)";

// Prod alone, promoting stage's deployment of run ${params.from_run}.
constexpr char kProdOnly[] = R"(name: shop-release
params: [{name: from_run}]
tasks:
  - name: manifests-prod
    render: {kustomization: prod}
  - name: deploy-prod
    needs: [manifests-prod]
    deploy:
      environment: prod
      kind: preview
      manifests: manifests-prod
      namespace: shop-prod
      promote: {from: stage, run: "${params.from_run}"}
)";

constexpr char kKustomization[] = "resources: [app.yaml]\n";

// APP and INIT are replaced per environment and version.
constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: init, image: "INIT"}
      containers:
      - {name: app, image: "APP"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: report, image: "APP"}
)";

const std::string kWeb = "example.test/shop/web";
const std::string kInit = "example.test/shop/init";
std::string Pin(const std::string& repo, char hex) {
  return absl::StrCat(repo, "@sha256:", std::string(64, hex));
}

class PromoteTest : public deploy_testing::DeployFixture {
 protected:
  void SetUp() override {
    DeployFixture::SetUp();
    if (HasFatalFailure()) return;
    Write("src/pipeline.yaml", kPipeline);
    Write("src/release.yaml", kProdOnly);
    Write("src/stage/kustomization.yaml", kKustomization);
    Write("src/prod/kustomization.yaml", kKustomization);
  }

  // The manifests `env` (stage or prod) renders.
  void App(const std::string& env, const std::string& app,
           const std::string& init, const std::string& extra = "") {
    Write("src/" + env + "/app.yaml",
          absl::StrReplaceAll(kApp, {{"APP", app}, {"INIT", init}}) + extra);
  }

  using Result = deploy_testing::KilnResult;
  // The real kiln with `args` (+ --store), bounded in time.
  Result Kiln(const std::vector<std::string>& args) {
    return RunKiln(args, deploy_testing::Stderr::kSeparate);
  }
  Result Run(const std::string& file, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"run", dir_ + "/src/" + file,
                                     "--kubeconfig", kubeconfig_};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = Kiln(args);
    r.out += r.err;  // the run's progress goes to stderr
    return r;
  }
  // The run id `kiln run` printed ("run ID: STATE ...").
  static std::string RunId(const Result& r) {
    std::smatch m;
    static const std::regex re("(^|\n)run (r[0-9a-z-]+): ");
    EXPECT_TRUE(std::regex_search(r.out, m, re)) << r.out;
    return m.size() > 2 ? m[2].str() : "";
  }

  // `kubectl get KIND NAME -n NS -o jsonpath=PATH`.
  std::string Get(const std::string& ns, const std::string& kind,
                  const std::string& name, const std::string& jsonpath) {
    auto [code, out] =
        Kubectl({"get", kind, name, "-n", ns, "-o", "jsonpath=" + jsonpath});
    EXPECT_EQ(code, 0) << out;
    return out;
  }
  static constexpr char kPodImages[] =
      "{.spec.template.spec.initContainers[0].image} "
      "{.spec.template.spec.containers[0].image}";
  static constexpr char kCronImage[] =
      "{.spec.jobTemplate.spec.template.spec.containers[0].image}";
};

TEST_F(PromoteTest, ProdGetsStagesDigestsNotItsOwnRender) {
  App("stage", Pin(kWeb, 'a'), Pin(kInit, 'c'));
  // Prod's render names other references: a tag, and another digest.
  App("prod", kWeb + ":latest", Pin(kInit, 'd'));
  Result r = Run("pipeline.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string run = RunId(r);
  EXPECT_EQ(Get("shop-stage", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'a'));
  EXPECT_EQ(Get("shop-prod", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'a'));
  EXPECT_EQ(Get("shop-prod", "cronjob", "report", kCronImage), Pin(kWeb, 'a'));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat(
                         "deploy-prod | promoted ", Pin(kWeb, 'a'),
                         " from stage (deployment 1, run ", run, ")")));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("deploy-prod | promoted ",
                                            Pin(kInit, 'c'), " from stage")));
  // The record of prod shows the promoted images.
  Result h = Kiln({"env", "history", "prod"});
  ASSERT_EQ(h.exit_code, 0) << h.out << h.err;
  EXPECT_THAT(h.out, HasSubstr(Pin(kWeb, 'a')));
  EXPECT_THAT(h.out, Not(HasSubstr(kWeb + ":latest")));
  EXPECT_THAT(h.out, Not(HasSubstr(Pin(kInit, 'd'))));

  // A later run puts another digest on stage, and so on prod (the same
  // prod manifests artifact).
  App("stage", Pin(kWeb, 'b'), Pin(kInit, 'c'));
  r = Run("pipeline.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Get("shop-prod", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'b'));
  // Rolling prod back re-applies deployment 2 with the images it applied:
  // its manifests artifact still names prod's own render (never modified),
  // so they are pinned again.
  Result rb = Kiln(
      {"env", "rollback", "prod", "--no-wait", "--kubeconfig", kubeconfig_});
  ASSERT_EQ(rb.exit_code, 0) << rb.out << rb.err;
  EXPECT_THAT(rb.out + rb.err, HasSubstr("images pinned as deployment 2 ("));
  EXPECT_EQ(Get("shop-prod", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'a'));
}

TEST_F(PromoteTest, PromotesFromAnEarlierRun) {
  App("stage", Pin(kWeb, 'a'), Pin(kInit, 'c'));
  App("prod", kWeb + ":latest", Pin(kInit, 'c'));
  Result first = Run("pipeline.yaml");
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  const std::string run1 = RunId(first);
  // A later run puts another digest on stage (and prod).
  App("stage", Pin(kWeb, 'b'), Pin(kInit, 'c'));
  Result second = Run("pipeline.yaml");
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(Get("shop-prod", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'b'));
  // Releasing run 1's stage deployment puts its digest back on prod.
  Result release = Run("release.yaml", {"--param", "from_run=" + run1});
  ASSERT_EQ(release.exit_code, 0) << release.out << release.err;
  EXPECT_EQ(Get("shop-prod", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'a'));
  EXPECT_THAT(release.out, HasSubstr(absl::StrCat(
                               "promoted ", Pin(kWeb, 'a'),
                               " from stage (deployment 1, run ", run1, ")")));
  // A run that does not exist.
  Result none = Run("release.yaml", {"--param", "from_run=r-nope"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.out + none.err,
              HasSubstr("no run 'r-nope' in the run store"));
}

TEST_F(PromoteTest, FailedStageIsNeverPromoted) {
  // Stage's manifests name another namespace: its deploy fails, recorded.
  App("stage", Pin(kWeb, 'a'), Pin(kInit, 'c'),
      "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: "
      "elsewhere}\n");
  App("prod", kWeb + ":latest", Pin(kInit, 'c'));
  Result first = Run("pipeline.yaml");
  ASSERT_NE(first.exit_code, 0) << first.out;
  EXPECT_THAT(first.out, HasSubstr("deploy-prod: skipped"));
  const std::string run1 = RunId(first);
  Result release = Run("release.yaml", {"--param", "from_run=" + run1});
  EXPECT_NE(release.exit_code, 0);
  EXPECT_THAT(release.out + release.err,
              HasSubstr(absl::StrCat("run ", run1,
                                     " has no successful deployment of "
                                     "environment 'stage' (its newest, "
                                     "deployment 1 (task deploy-stage), "
                                     "failed: ")));
  // Nothing was written for prod: no namespace, no record.
  auto [code, out] = Kubectl({"get", "namespace", "shop-prod"});
  EXPECT_NE(code, 0) << out;
  Result h = Kiln({"env", "history", "prod"});
  EXPECT_EQ(h.exit_code, 1) << h.out;
}

TEST_F(PromoteTest, UnknownRepositoryIsRefusedBeforeAnyWrite) {
  App("stage", Pin(kWeb, 'a'), Pin(kInit, 'c'));
  App("prod", kWeb + ":latest", "example.test/shop/migrate:v1");
  Result r = Run("pipeline.yaml");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out + r.err, HasSubstr("environment 'stage' did not deploy "
                                       "repository example.test/shop/migrate"));
  auto [code, out] = Kubectl({"get", "namespace", "shop-prod"});
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(Get("shop-stage", "deployment", "web", kPodImages),
            Pin(kInit, 'c') + " " + Pin(kWeb, 'a'));
}

TEST_F(PromoteTest, ProdMustNeedTheStageDeploy) {
  Write(
      "src/pipeline.yaml",
      absl::StrReplaceAll(kPipeline, {{"needs: [deploy-stage, manifests-prod]",
                                       "needs: [manifests-prod]"}}));
  App("stage", Pin(kWeb, 'a'), Pin(kInit, 'c'));
  App("prod", kWeb + ":latest", Pin(kInit, 'c'));
  Result r = Run("pipeline.yaml");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err,
              HasSubstr("pipeline.yaml:17:23: task 'deploy-prod': promotes "
                        "environment 'stage' of this run, but does not need "
                        "task 'deploy-stage' that deploys it"));
  auto [code, out] = Kubectl({"get", "namespace", "shop-stage"});
  EXPECT_NE(code, 0) << "nothing runs: " << out;
}

}  // namespace
}  // namespace kiln
