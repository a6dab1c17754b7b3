// Which deployment a rollback re-applies (ChooseRollback), over a real run
// store; the apply itself is tested end to end in //tests/deploy:history_test.
#include "engine/deploy/rollback.h"

#include <string>

#include "base/testing/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::deploy {
namespace {

using ::testing::HasSubstr;

class ChooseRollbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    auto runs =
        store::RunStore::Open(test_files::TempDir("rollback.", info->name()));
    ASSERT_TRUE(runs.ok()) << runs.status();
    runs_ = *std::move(runs);
  }
  int64_t Record(const std::string& digest, bool ok,
                 const std::string& ns = "shop-stage",
                 const std::string& env = "stage") {
    store::DeploymentRecord r;
    r.environment = env;
    r.namespace_name = ns;
    r.task = "deploy";
    r.manifests_digest = digest;
    r.succeeded = ok;
    if (!ok) r.reason = "rollout failed";
    auto id = runs_->RecordDeployment(r);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : -1;
  }
  absl::StatusOr<store::DeploymentRecord> Choose(
      int64_t to = 0, const std::string& ns = "",
      const std::string& env = "stage") {
    RollbackRequest request;
    request.environment = env;
    request.namespace_name = ns;
    request.to = to;
    return ChooseRollback(*runs_, request);
  }

  std::unique_ptr<store::RunStore> runs_;
};

TEST_F(ChooseRollbackTest, DefaultIsTheSuccessfulOneBeforeTheLatest) {
  int64_t v1 = Record("sha256:01", true);
  Record("sha256:02", true);
  auto to = Choose();
  ASSERT_TRUE(to.ok()) << to.status();
  EXPECT_EQ(to->id, v1);
}

TEST_F(ChooseRollbackTest, AfterAFailureItIsTheLastGoodOne) {
  Record("sha256:01", true);
  int64_t v2 = Record("sha256:02", true);
  Record("sha256:03", false);
  auto to = Choose();
  ASSERT_TRUE(to.ok()) << to.status();
  EXPECT_EQ(to->id, v2);
}

TEST_F(ChooseRollbackTest, SkipsTheLatestManifestsAndFailures) {
  int64_t v1 = Record("sha256:01", true);
  Record("sha256:02", false);
  Record("sha256:02", true);
  Record("sha256:02", true);  // deployed twice: not a rollback target
  auto to = Choose();
  ASSERT_TRUE(to.ok()) << to.status();
  EXPECT_EQ(to->id, v1);
}

TEST_F(ChooseRollbackTest, NothingToRollBackTo) {
  Record("sha256:01", true);
  auto to = Choose();
  EXPECT_EQ(to.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(to.status().message(),
              HasSubstr("no successful deployment with other manifests"));
  EXPECT_EQ(Choose(0, "", "prod").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ChooseRollbackTest, AnExplicitIdMustBeAGoodOneOfThisEnvironment) {
  int64_t v1 = Record("sha256:01", true);
  int64_t bad = Record("sha256:02", false);
  int64_t prod = Record("sha256:03", true, "shop-prod", "prod");
  Record("sha256:04", true);
  EXPECT_EQ(Choose(v1)->id, v1);
  auto failed = Choose(bad);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.status().message(), HasSubstr("failed (rollout failed)"));
  auto other = Choose(prod);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.status().message(), HasSubstr("of environment \"prod\""));
  EXPECT_EQ(Choose(999).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ChooseRollbackTest, SeveralNamespacesNeedOneNamed) {
  int64_t a1 = Record("sha256:01", true, "shop-a", "preview");
  Record("sha256:02", true, "shop-b", "preview");
  Record("sha256:03", true, "shop-a", "preview");
  auto ambiguous = Choose(0, "", "preview");
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      ambiguous.status().message(),
      HasSubstr("several namespaces (shop-a, shop-b): pass --namespace"));
  auto to = Choose(0, "shop-a", "preview");
  ASSERT_TRUE(to.ok()) << to.status();
  EXPECT_EQ(to->id, a1);
  EXPECT_EQ(Choose(0, "shop-c", "preview").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kiln::deploy
