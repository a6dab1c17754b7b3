#include "engine/pipeline/substitute.h"

#include <string>

#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

SubstitutionContext Context() {
  SubstitutionContext c;
  c.params["registry"] = "localhost:5000";
  c.params["evil"] =
      "x; rm -rf / $(touch pwned) `id` ${params.registry}\nline2";
  c.trigger.set_branch("Feature/JIRA-12_Fix");
  c.trigger.set_revision("abc123");
  c.trigger.set_event(v1::PULL_REQUEST);
  c.task_outputs["image"]["digest"] = "sha256:0123";
  c.task_outputs["image"]["image"] = "localhost:5000/hello@sha256:0123";
  return c;
}

struct Case {
  const char* text;
  const char* want;
};

class SubstituteTest : public ::testing::TestWithParam<Case> {};

TEST_P(SubstituteTest, Replaces) {
  absl::StatusOr<std::string> out = Substitute(GetParam().text, Context());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SubstituteTest,
    ::testing::Values(
        Case{"plain", "plain"}, Case{"", ""},
        Case{"${params.registry}/hello", "localhost:5000/hello"},
        Case{"hello-${trigger.branch_slug}", "hello-feature-jira-12-fix"},
        Case{"${trigger.branch}@${trigger.revision}",
             "Feature/JIRA-12_Fix@abc123"},
        Case{"${trigger.event}", "pull_request"},
        Case{"${tasks.image.outputs.digest}", "sha256:0123"},
        Case{"${tasks.image.outputs.image}",
             "localhost:5000/hello@sha256:0123"},
        Case{"$${params.registry}", "${params.registry}"},
        Case{"cost: $5, $HOME, $$", "cost: $5, $HOME, $$"},
        Case{"$$${params.registry}", "$${params.registry}"},
        Case{"a${params.registry}b${params.registry}c",
             "alocalhost:5000blocalhost:5000c"},
        // A value is inserted verbatim and never re-scanned.
        Case{"${params.evil}",
             "x; rm -rf / $(touch pwned) `id` ${params.registry}\nline2"}));

TEST(SubstituteTest, Errors) {
  SubstitutionContext c = Context();
  EXPECT_EQ(Substitute("${params.nope}", c).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Substitute("${params.registry", c).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(Substitute("${HOME}", c).status().message()),
              HasSubstr("unknown reference '${HOME}'"));
  EXPECT_EQ(Substitute("${tasks.other.outputs.digest}", c).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Substitute("${trigger.nope}", c).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SubstituteTest, ParseReferences) {
  std::vector<Reference> refs;
  ASSERT_TRUE(
      ParseReferences(
          "${params.a}-$${x}-${tasks.t-1.outputs.digest}-${trigger.branch}",
          &refs)
          .ok());
  ASSERT_EQ(refs.size(), 3u);
  EXPECT_EQ(refs[0].kind, Reference::Kind::kParam);
  EXPECT_EQ(refs[0].name, "a");
  EXPECT_EQ(refs[1].kind, Reference::Kind::kTaskOutput);
  EXPECT_EQ(refs[1].name, "t-1");
  EXPECT_EQ(refs[1].key, "digest");
  EXPECT_EQ(refs[2].kind, Reference::Kind::kTrigger);
  EXPECT_FALSE(ParseReferences("${params.a.b}", &refs).ok());
  EXPECT_FALSE(ParseReferences("${tasks.t.digest}", &refs).ok());
  EXPECT_FALSE(ParseReferences("${ params.a}", &refs).ok());
}

TEST(SubstituteTest, BranchSlug) {
  EXPECT_EQ(BranchSlug("main"), "main");
  EXPECT_EQ(BranchSlug("feature/JIRA-12_Fix"), "feature-jira-12-fix");
  EXPECT_EQ(BranchSlug("--a//b--"), "a-b");
  EXPECT_EQ(BranchSlug("ünïcode"), "n-code");
  EXPECT_EQ(BranchSlug(""), "branch");
  EXPECT_EQ(BranchSlug("///"), "branch");
  std::string long_branch(100, 'a');
  std::string slug = BranchSlug(long_branch);
  EXPECT_EQ(slug.size(), 63u);
  EXPECT_EQ(slug.substr(0, 55), std::string(54, 'a') + "-");
  EXPECT_NE(BranchSlug(long_branch + "x"), slug);  // hash keeps them apart
  for (const std::string& b :
       {std::string("A_B.C"), long_branch, std::string(70, '-') + "x"}) {
    std::string s = BranchSlug(b);
    EXPECT_LE(s.size(), 63u);
    EXPECT_NE(s.front(), '-');
    EXPECT_NE(s.back(), '-');
    EXPECT_EQ(s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-"),
              std::string::npos);
  }
}

TEST(SubstituteTest, TaskValuesStayData) {
  LoadedPipeline p = LoadPipelineText(R"(
name: s
params: [{name: evil, default: ""}, {name: registry, default: r}]
tasks:
  - name: image
    containerize: {base: scratch, push: "${params.registry}/x", labels: {rev: "${trigger.revision}"}}
  - name: run
    needs: [image]
    run:
      image: host
      command: [echo, "${params.evil}", "digest=${tasks.image.outputs.digest}", "$${literal}"]
      env: {VALUE: "${params.evil}"}
    outputs: [{artifact: o, paths: ["${x}-is-literal-here"]}]
  - name: manifests
    needs: [image]
    render:
      kustomization: deploy
      namespace: app-${trigger.branch_slug}
      images: [{name: app, digest: "${tasks.image.outputs.digest}"}]
  - name: ship
    needs: [manifests]
    deploy: {environment: preview, manifests: manifests, namespace: "app-${trigger.branch_slug}"}
)",
                                      "s.yaml", [] {
                                        LoadOptions o;
                                        o.validate = false;
                                        return o;
                                      }());
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  SubstitutionContext c = Context();
  const std::string evil = c.params["evil"];

  absl::StatusOr<v1::Task> run = SubstituteTask(p.pipeline.tasks(1), c);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_THAT(run->run().command(),
              ElementsAre("echo", evil, "digest=sha256:0123", "${literal}"));
  EXPECT_EQ(run->run().env(0).value(), evil);
  EXPECT_EQ(run->outputs(0).paths(0), "${x}-is-literal-here");  // literal field

  absl::StatusOr<v1::Task> image = SubstituteTask(p.pipeline.tasks(0), c);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->containerize().push(), "localhost:5000/x");
  EXPECT_EQ(image->containerize().labels(0).value(), "abc123");

  absl::StatusOr<v1::Task> render = SubstituteTask(p.pipeline.tasks(2), c);
  ASSERT_TRUE(render.ok()) << render.status();
  EXPECT_EQ(render->render().namespace_(), "app-feature-jira-12-fix");
  EXPECT_EQ(render->render().images(0).digest(), "sha256:0123");

  absl::StatusOr<v1::Task> ship = SubstituteTask(p.pipeline.tasks(3), c);
  ASSERT_TRUE(ship.ok());
  EXPECT_EQ(ship->deploy().namespace_(), "app-feature-jira-12-fix");

  c.task_outputs.clear();
  absl::StatusOr<v1::Task> missing = SubstituteTask(p.pipeline.tasks(1), c);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("run.command[2]"));
}

TEST(SubstituteTest, OutputKeys) {
  v1::Task t;
  t.mutable_containerize();
  EXPECT_THAT(OutputKeys(t), ElementsAre("digest", "image"));
  t.mutable_render();
  EXPECT_THAT(OutputKeys(t), ElementsAre("digest"));
  t.mutable_run();
  EXPECT_TRUE(OutputKeys(t).empty());
}

}  // namespace
}  // namespace kiln::pipeline
