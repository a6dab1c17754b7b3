// Promotion by digest: image references, which recorded deployment is
// promoted (over a real run store), and the rewrite of the manifests. The
// deploy end to end: //tests/deploy:promote_test.
#include "engine/deploy/promote.h"

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::deploy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kA(64, 'a');
const std::string kB(64, 'b');
const std::string kC(64, 'c');

std::string Ref(const std::string& repo, const std::string& hex) {
  return absl::StrCat(repo, "@sha256:", hex);
}

TEST(RepositoryOfTest, DropsTagAndDigest) {
  EXPECT_EQ(RepositoryOf("nginx"), "nginx");
  EXPECT_EQ(RepositoryOf("nginx:1.25"), "nginx");
  EXPECT_EQ(RepositoryOf("reg:5000/team/app"), "reg:5000/team/app");
  EXPECT_EQ(RepositoryOf("reg:5000/team/app:v1"), "reg:5000/team/app");
  EXPECT_EQ(RepositoryOf(Ref("reg:5000/app", kA)), "reg:5000/app");
  EXPECT_EQ(RepositoryOf("reg:5000/app:v1@sha256:" + kA), "reg:5000/app");
}

TEST(DigestOfTest, OnlyWellFormedDigests) {
  EXPECT_EQ(DigestOf(Ref("reg/app", kA)), "sha256:" + kA);
  EXPECT_EQ(DigestOf("reg/app:v1@sha256:" + kB), "sha256:" + kB);
  EXPECT_EQ(DigestOf("reg/app:v1"), "");
  EXPECT_EQ(DigestOf("reg/app@sha256:abc"), "");
  EXPECT_EQ(DigestOf("reg/app@sha256:" + std::string(64, 'G')), "");
  EXPECT_EQ(DigestOf("reg/app@md5:" + kA), "");
}

Manifest Workload(const std::string& kind, nlohmann::json pod_spec) {
  Manifest m;
  m.kind = kind;
  m.name = "web";
  m.api_version = kind == "CronJob" ? "batch/v1" : "apps/v1";
  m.source = "app.yaml#1";
  m.object = {{"apiVersion", m.api_version},
              {"kind", kind},
              {"metadata", {{"name", "web"}}}};
  nlohmann::json tmpl = {{"spec", std::move(pod_spec)}};
  if (kind == "Pod") {
    m.object["spec"] = tmpl["spec"];
  } else if (kind == "CronJob") {
    m.object["spec"] = {{"schedule", "* * * * *"},
                        {"jobTemplate", {{"spec", {{"template", tmpl}}}}}};
  } else {
    m.object["spec"] = {{"template", tmpl}};
  }
  return m;
}

nlohmann::json Containers(const std::string& list, const std::string& image) {
  return {{list, {{{"name", "c"}, {"image", image}}}}};
}

TEST(PinImagesTest, TagBecomesTheRecordedDigest) {
  std::vector<Manifest> ms = {
      Workload("Deployment", Containers("containers", "reg/app:latest"))};
  auto pinned = PinImages({Ref("reg/app", kA), "busybox:1"}, "stage", &ms);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(ms[0].object["spec"]["template"]["spec"]["containers"][0]["image"],
            Ref("reg/app", kA));
  ASSERT_EQ(pinned->size(), 1u);
  EXPECT_EQ((*pinned)[0].original, "reg/app:latest");
  EXPECT_EQ((*pinned)[0].pinned, Ref("reg/app", kA));
  EXPECT_THAT(ImagesOf(ms), ElementsAre(Ref("reg/app", kA)));
}

TEST(PinImagesTest, AnotherDigestIsReplaced) {
  std::vector<Manifest> ms = {
      Workload("StatefulSet", Containers("containers", Ref("reg/app", kB)))};
  // Recorded with its tag as well: the repository is what matches.
  auto pinned = PinImages({"reg/app:v1@sha256:" + kA}, "stage", &ms);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_THAT(ImagesOf(ms), ElementsAre(Ref("reg/app", kA)));
}

TEST(PinImagesTest, InitEphemeralAndCronJobAndPodImages) {
  nlohmann::json spec = Containers("containers", "reg/app:v2");
  spec["initContainers"] = {{{"name", "init"}, {"image", "reg/init:v2"}}};
  spec["ephemeralContainers"] = {{{"name", "dbg"}, {"image", "reg/dbg"}}};
  std::vector<Manifest> ms = {
      Workload("CronJob", spec), Workload("Pod", spec),
      Workload("DaemonSet", Containers("initContainers", "reg/init")),
      Workload("Job", Containers("containers", "reg/app:v3"))};
  auto pinned =
      PinImages({Ref("reg/app", kA), Ref("reg/init", kB), Ref("reg/dbg", kC)},
                "stage", &ms);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_THAT(ImagesOf(ms), ElementsAre(Ref("reg/app", kA), Ref("reg/dbg", kC),
                                        Ref("reg/init", kB)));
  const auto& cron =
      ms[0].object["spec"]["jobTemplate"]["spec"]["template"]["spec"];
  EXPECT_EQ(cron["initContainers"][0]["image"], Ref("reg/init", kB));
  EXPECT_EQ(cron["containers"][0]["image"], Ref("reg/app", kA));
  EXPECT_EQ(ms[1].object["spec"]["ephemeralContainers"][0]["image"],
            Ref("reg/dbg", kC));
  EXPECT_EQ(pinned->size(), 5u);  // distinct (original, pinned) pairs
}

TEST(PinImagesTest, UnknownRepositoryIsRefused) {
  std::vector<Manifest> ms = {
      Workload("Deployment", Containers("initContainers", "reg/migrate:v1"))};
  auto pinned = PinImages({Ref("reg/app", kA)}, "stage", &ms);
  ASSERT_EQ(pinned.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(pinned.status().message(),
              HasSubstr("app.yaml#1: Deployment \"web\" initContainers \"c\": "
                        "image reg/migrate:v1: environment 'stage' did not "
                        "deploy repository reg/migrate (it deployed: "
                        "reg/app)"));
}

TEST(PinImagesTest, TagOnlyAndAmbiguousAreRefused) {
  std::vector<Manifest> ms = {
      Workload("Deployment", Containers("containers", "reg/app:v1"))};
  auto tag_only = PinImages({"reg/app:v1"}, "stage", &ms);
  EXPECT_THAT(tag_only.status().message(), HasSubstr("by tag only"));
  auto two = PinImages({Ref("reg/app", kA), Ref("reg/app", kB)}, "stage", &ms);
  EXPECT_THAT(two.status().message(), HasSubstr("different digests"));
  // Not rewritten.
  EXPECT_THAT(ImagesOf(ms), ElementsAre("reg/app:v1"));
  // Objects without a pod spec are left alone.
  Manifest cm;
  cm.kind = "ConfigMap";
  cm.object = {{"kind", "ConfigMap"}, {"data", {{"image", "x"}}}};
  std::vector<Manifest> only_cm = {cm};
  auto none = PinImages({}, "stage", &only_cm);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

class FindPromotedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string dir =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/", info->name());
    std::filesystem::remove_all(dir);
    auto runs = store::RunStore::Open(dir);
    ASSERT_TRUE(runs.ok()) << runs.status();
    runs_ = *std::move(runs);
  }
  int64_t Record(const std::string& run, const std::string& env, bool ok,
                 const std::string& hex) {
    store::DeploymentRecord r;
    r.environment = env;
    r.namespace_name = env;
    r.run_id = run;
    r.task = "deploy-" + env;
    r.manifests_digest = "sha256:" + kC;
    r.images = {Ref("reg/app", hex)};
    r.succeeded = ok;
    if (!ok) r.reason = "rollout failed";
    auto id = runs_->RecordDeployment(r);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : -1;
  }
  std::unique_ptr<store::RunStore> runs_;
};

TEST_F(FindPromotedTest, SameRunTakesItsNewestWhichMustHaveSucceeded) {
  Record("r1", "stage", true, kA);
  int64_t b = Record("r2", "stage", true, kB);
  Record("r2", "prod", true, kC);
  auto found = FindPromoted(runs_.get(), {"stage", "r2", true});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, b);
  EXPECT_THAT(found->images, ElementsAre(Ref("reg/app", kB)));

  int64_t failed = Record("r2", "stage", false, kC);
  found = FindPromoted(runs_.get(), {"stage", "r2", true});
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(found.status().message(),
              HasSubstr(absl::StrCat("deployment ", failed,
                                     " (task deploy-stage), failed: rollout "
                                     "failed")));

  found = FindPromoted(runs_.get(), {"stage", "r3", true});
  EXPECT_THAT(found.status().message(),
              HasSubstr("this run has not deployed environment 'stage'"));
}

// A rerun whose stage deploy re-applied nothing (the deploy memo) records
// no deployment; the one it found live is promoted, and only that one.
TEST_F(FindPromotedTest, SameRunWithoutARecordTakesTheDeploymentFoundLive) {
  int64_t live = Record("r1", "stage", true, kA);
  Record("r1", "stage", true, kB);  // newer, but not the one found live
  PromotionSource source{"stage", "r2", true};
  source.confirmed = live;
  auto found = FindPromoted(runs_.get(), source);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, live);
  EXPECT_THAT(found->images, ElementsAre(Ref("reg/app", kA)));

  // This run's own record wins over what an earlier deploy found live.
  int64_t own = Record("r2", "stage", true, kC);
  found = FindPromoted(runs_.get(), source);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, own);

  // A confirmed id of another environment, or a failed one, is refused.
  source.run = "r3";
  source.confirmed = Record("r0", "prod", true, kA);
  found = FindPromoted(runs_.get(), source);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
  source.confirmed = Record("r0", "stage", false, kA);
  found = FindPromoted(runs_.get(), source);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FindPromotedTest, AnotherRunTakesItsNewestSuccessful) {
  int64_t a = Record("r1", "stage", true, kA);
  Record("r1", "stage", false, kB);
  Record("r2", "stage", true, kC);
  auto found = FindPromoted(runs_.get(), {"stage", "r1", false});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, a);

  Record("r4", "stage", false, kB);
  found = FindPromoted(runs_.get(), {"stage", "r4", false});
  EXPECT_THAT(found.status().message(),
              HasSubstr("run r4 has no successful deployment of environment "
                        "'stage'"));
  found = FindPromoted(runs_.get(), {"stage", "r-none", false});
  EXPECT_THAT(found.status().message(), HasSubstr("no run 'r-none'"));
}

TEST_F(FindPromotedTest, PromoteLogsEachImage) {
  int64_t a = Record("r1", "stage", true, kA);
  std::vector<Manifest> ms = {
      Workload("Deployment", Containers("containers", "reg/app:v9"))};
  std::vector<std::string> lines;
  absl::Status s =
      Promote(runs_.get(), {"stage", "r1", true}, &ms,
              [&lines](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(lines, ElementsAre(absl::StrCat("promoted ", Ref("reg/app", kA),
                                              " from stage (deployment ", a,
                                              ", run r1)")));
  std::vector<Manifest> other = {
      Workload("Deployment", Containers("containers", "reg/other:v9"))};
  s = Promote(runs_.get(), {"stage", "r1", true}, &other, [](auto) {});
  EXPECT_THAT(s.message(), HasSubstr("did not deploy repository reg/other"));
  EXPECT_THAT(ImagesOf(other), ElementsAre("reg/other:v9"));
}

}  // namespace
}  // namespace kiln::deploy
