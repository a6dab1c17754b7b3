// A loaded pipeline is validated in full once: the loader's Validation lets
// a later caller (Engine::Submit) run only the capability-dependent checks,
// with the diagnostics a full validation gives, and covers nothing else.
#include <string>
#include <vector>

#include "engine/pipeline/loader.h"
#include "engine/pipeline/validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

constexpr char kYaml[] =
    "name: p\n"
    "tasks:\n"
    "  - {name: a, run: {command: [make]}, outputs: [{artifact: m, paths: "
    "[m]}]}\n"
    "  - name: go\n"
    "    needs: [a]\n"
    "    run: {image: 'golang:1.22', command: [go]}\n"
    "  - {name: ship, needs: [a], deploy: {environment: e, manifests: m}}\n"
    "environments:\n"
    "  - {name: e, kind: permanent, namespace: n}\n";

std::vector<std::string> Strings(const std::vector<Diagnostic>& d) {
  std::vector<std::string> out;
  for (const Diagnostic& x : d) out.push_back(x.ToString());
  return out;
}

TEST(ValidateOnceTest, TheLoadersValidationLeavesOnlyTheCapabilityChecks) {
  LoadedPipeline p = LoadPipelineText(kYaml, "v.yaml");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  ASSERT_NE(p.validation, nullptr);
  EXPECT_TRUE(p.validation->Covers(p.pipeline));

  // No image support, and no cluster for the deploy.
  ExecCapabilities caps;
  caps.images = false;
  caps.cluster = [](const std::string&) {
    return absl::FailedPreconditionError("no kubeconfig here");
  };
  const int64_t before = FullValidationsForTesting();
  std::vector<Diagnostic> once = ValidateWithCapabilities(
      p.pipeline, p.source_map.get(), caps, p.validation.get());
  EXPECT_EQ(FullValidationsForTesting(), before);
  std::vector<Diagnostic> full =
      ValidatePipeline(p.pipeline, p.source_map.get(), caps);
  EXPECT_EQ(FullValidationsForTesting(), before + 1);
  EXPECT_EQ(Strings(once), Strings(full));
  ASSERT_EQ(once.size(), 2u) << JoinDiagnostics(once);
  EXPECT_THAT(once[0].ToString(),
              HasSubstr("v.yaml:6:18: task 'go': run.image 'golang:1.22' "
                        "cannot run here"));
  EXPECT_THAT(once[1].ToString(), HasSubstr("v.yaml:7:"));
  EXPECT_THAT(once[1].ToString(), HasSubstr(": task 'ship': "));
  EXPECT_THAT(once[1].ToString(), HasSubstr("no kubeconfig here"));

  // With the capabilities, nothing is left.
  ExecCapabilities able;
  able.images = true;
  EXPECT_TRUE(ValidateWithCapabilities(p.pipeline, p.source_map.get(), able,
                                       p.validation.get())
                  .empty());
}

TEST(ValidateOnceTest, AChangedPipelineIsValidatedInFull) {
  LoadedPipeline p = LoadPipelineText(kYaml, "v.yaml");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  v1::Pipeline changed = p.pipeline;
  changed.mutable_tasks(1)->add_needs("nope");
  EXPECT_FALSE(p.validation->Covers(changed));
  ExecCapabilities able;
  able.images = true;
  const int64_t before = FullValidationsForTesting();
  std::vector<Diagnostic> d = ValidateWithCapabilities(
      changed, p.source_map.get(), able, p.validation.get());
  EXPECT_EQ(FullValidationsForTesting(), before + 1);
  ASSERT_EQ(d.size(), 1u) << JoinDiagnostics(d);
  EXPECT_THAT(d[0].ToString(), HasSubstr("needs unknown task 'nope'"));
  // Without a prior validation: in full too.
  EXPECT_EQ(Strings(ValidateWithCapabilities(changed, p.source_map.get(), able,
                                             nullptr)),
            Strings(d));
}

TEST(ValidateOnceTest, NoValidationForAPipelineWithErrorsOrNotValidated) {
  LoadedPipeline bad = LoadPipelineText(
      "name: p\ntasks:\n  - {name: a, needs: [b], run: "
      "{command: [x]}}\n",
      "v.yaml");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.validation, nullptr);
  LoadOptions options;
  options.validate = false;
  LoadedPipeline unchecked = LoadPipelineText(kYaml, "v.yaml", options);
  ASSERT_TRUE(unchecked.ok());
  EXPECT_EQ(unchecked.validation, nullptr);
}

}  // namespace
}  // namespace kiln::pipeline
