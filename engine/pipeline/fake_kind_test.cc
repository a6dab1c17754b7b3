// Adding a kind takes one file and one registration line: a test-only kind
// (here in this file, registered below) is decoded, validated, walked for
// references and asked for its output keys by the pipeline layer, which
// never names it. This binary does not link the built-in kinds.
#include "absl/strings/str_cat.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/substitute.h"
#include "engine/pipeline/validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// `echo: {text: ...}`, stored in the Task's run spec (a test cannot add a
// proto message): its text is command[0].
class EchoKind : public KindSpec {
 public:
  EchoKind() : KindSpec("echo", v1::Task::kRun) {}
  void Decode(internal::Decoder* d, const yaml::Node& node,
              const std::string& path, v1::Task* out) const override {
    internal::Fields f(d, node, path, {"text"});
    internal::DecodeString(d, f, "text", out->mutable_run()->add_command());
  }
  void Validate(const v1::Task& task, const std::string& path,
                KindChecks* checks) const override {
    checks->Require(!task.run().command(0).empty(), Field(path, "echo"),
                    "text");
  }
  void ForEachString(v1::Task* task, const std::string& path,
                     const TaskStringVisitor& visit) const override {
    visit(Field(Field(path, "echo"), "text"),
          task->mutable_run()->mutable_command(0), FieldUse::kSubstituted);
  }
  KindFacts Facts(const v1::Task&) const override {
    KindFacts facts;
    facts.output_keys = {"said"};
    return facts;
  }
  absl::optional<Refusal> Unsupported(const v1::Task&,
                                      const ExecCapabilities&) const override {
    return absl::nullopt;
  }
};

// The registration line.
const bool registered = (RegisterKind(new EchoKind()), true);

TEST(FakeKindTest, TheLoaderAndValidatorUseTheRegisteredKind) {
  ASSERT_TRUE(registered);
  LoadedPipeline ok = LoadPipelineText(
      "name: p\ntasks:\n"
      "  - {name: a, echo: {text: hi}}\n"
      "  - {name: b, needs: [a], echo: {text: '${tasks.a.outputs.said}'}}\n",
      "p.yaml");
  ASSERT_TRUE(ok.ok()) << JoinDiagnostics(ok.errors);
  EXPECT_STREQ(KindName(ok.pipeline.tasks(0)), "echo");
  EXPECT_THAT(OutputKeys(ok.pipeline.tasks(0)), ElementsAre("said"));

  LoadedPipeline bad = LoadPipelineText(
      "name: p\ntasks:\n"
      "  - {name: a, echo: {text: ''}}\n"
      "  - {name: b, needs: [a], echo: {text: '${tasks.a.outputs.nope}'}}\n"
      "  - {name: c, echo: {txt: x}}\n",
      "p.yaml");
  std::string errors = JoinDiagnostics(bad.errors);
  EXPECT_THAT(errors, HasSubstr("p.yaml:5:"));  // the unknown field `txt`
  EXPECT_THAT(errors, HasSubstr("txt"));
  LoadedPipeline invalid = LoadPipelineText(
      "name: p\ntasks:\n"
      "  - {name: a, echo: {text: ''}}\n"
      "  - {name: b, needs: [a], echo: {text: '${tasks.a.outputs.nope}'}}\n",
      "p.yaml");
  errors = JoinDiagnostics(invalid.errors);
  EXPECT_THAT(errors, HasSubstr("task 'a': missing required field 'text'"));
  EXPECT_THAT(errors, HasSubstr("echo task has no output 'nope'; known: said"));
}

}  // namespace
}  // namespace kiln::pipeline
