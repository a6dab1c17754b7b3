#include "engine/pipeline/validate.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/testing/growth.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

// Loads YAML (decode must succeed) and returns the validation diagnostics.
std::vector<Diagnostic> Check(const std::string& yaml) {
  LoadOptions options;
  options.validate = false;
  LoadedPipeline p = LoadPipelineText(yaml, "v.yaml", options);
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  return ValidatePipeline(p.pipeline, p.source_map.get());
}

struct Case {
  const char* name;
  const char* yaml;
  const char* where;  // LINE:COL of the first diagnostic
  const char* message;
};

class ValidateTest : public ::testing::TestWithParam<Case> {};

TEST_P(ValidateTest, FirstDiagnostic) {
  const Case& c = GetParam();
  std::vector<Diagnostic> d = Check(c.yaml);
  ASSERT_FALSE(d.empty()) << c.name;
  std::string first = d.front().ToString();
  EXPECT_THAT(first, HasSubstr(absl::StrCat("v.yaml:", c.where, ": ")))
      << first;
  EXPECT_THAT(first, HasSubstr(c.message)) << JoinDiagnostics(d);
}

#define T(body) "name: p\ntasks:\n" body
// Tasks this kiln cannot execute, skipped: the checks of their fields are
// tested here, the refusal itself below.
#define TS(body) T(body) "options: {unsupported: skip}\n"

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidateTest,
    ::testing::Values(
        Case{"no_name", "tasks:\n  - {name: a, run: {command: [x]}}\n", "1:1",
             "missing required field 'name'"},
        Case{"no_tasks", "name: p\ntasks: []\n", "1:1",
             "the pipeline has no tasks"},
        Case{"approval_timeout_too_long",
             T("  - name: a\n    run: {command: [x]}\n"
               "    approval: {timeout: 745h}\n"),
             "5:25", "the approval timeout is longer than 30 days"},
        Case{"approval_timeout_zero",
             T("  - name: a\n    run: {command: [x]}\n"
               "    approval: {timeout: 0s}\n"),
             "5:25", "the approval timeout must be positive"},
        Case{"approval_approver_twice",
             T("  - name: a\n    run: {command: [x]}\n"
               "    approval: {approvers: [al, al]}\n"),
             "5:32", "approver 'al' is listed twice"},
        Case{"approval_in_finally",
             "name: p\ntasks:\n  - {name: a, run: {command: [x]}}\n"
             "finally:\n  - name: f\n    run: {command: [x]}\n"
             "    approval: {}\n",
             "7:15", "a finally task cannot wait for approval"},
        Case{"bad_task_name", T("  - {name: a.b, run: {command: [x]}}\n"),
             "3:12", "invalid task name 'a.b'"},
        Case{"missing_task_name", T("  - run: {command: [x]}\n"), "3:5",
             "task: missing required field 'name'"},
        Case{"duplicate_name",
             T("  - {name: a, run: {command: [x]}}\n  - {name: a, run: "
               "{command: [x]}}\n"),
             "4:12", "duplicate task name 'a' (first at line 3)"},
        Case{
            "duplicate_with_finally",
            T("  - {name: a, run: {command: [x]}}\n") "finally:\n  - {name: a, "
                                                      "run: {command: [x]}}\n",
            "5:12", "duplicate task name 'a'"},
        Case{"no_kind", T("  - {name: a}\n"), "3:5", "task 'a' has no kind"},
        Case{"run_no_command", T("  - {name: a, run: {image: host}}\n"), "3:20",
             "task 'a': missing required field 'command'"},
        Case{"run_empty_program", T("  - {name: a, run: {command: [\"\"]}}\n"),
             "3:31", "the command's program (command[0]) is empty"},
        Case{"stash_fields", T("  - {name: a, stash: {artifact: x}}\n"), "3:22",
             "missing required field 'from'"},
        Case{"unstash_fields", T("  - {name: a, unstash: {to: x}}\n"), "3:24",
             "missing required field 'artifact'"},
        Case{"unstash_to_source_root",
             T("  - {name: a, unstash: {artifact: source, to: ./}}\n"), "3:47",
             "names the source directory itself"},
        Case{"stash_exclude_escapes",
             T("  - {name: a, stash: {artifact: x, from: d, exclude: [\"*.o\", "
               "\"a/../b\"]}}\n"),
             "3:62", "exclude pattern 'a/../b' escapes"},
        Case{"containerize_base",
             TS("  - {name: a, containerize: {entrypoint: [x]}}\n"), "3:29",
             "missing required field 'base'"},
        Case{"layer_relative",
             TS("  - {name: a, containerize: {base: scratch, layers: "
                "[{artifact: source, to: bin}]}}\n"),
             "3:54", "layer 'to' must be an absolute directory"},
        Case{"render_no_kustomization",
             T("  - {name: a, render: {namespace: x}}\n"), "3:23",
             "missing required field 'kustomization'"},
        Case{"deploy_both",
             TS("  - {name: a, deploy: {environment: e, manifests: m, overlay: "
                "o}}\n"),
             "3:23", "deploy needs exactly one of 'manifests'"},
        Case{"deploy_no_env", TS("  - {name: a, deploy: {overlay: o}}\n"),
             "3:23", "missing required field 'environment'"},
        Case{"unknown_needs",
             T("  - {name: build, run: {command: [x]}}\n  - {name: b, needs: "
               "[biuld], run: {command: [x]}}\n"),
             "4:23",
             "task 'b' needs unknown task 'biuld' (did you mean 'build'?)"},
        Case{"needs_itself",
             T("  - {name: a, needs: [a], run: {command: [x]}}\n"), "3:23",
             "task 'a' needs itself"},
        Case{"needs_twice",
             T("  - {name: a, run: {command: [x]}}\n  - {name: b, needs: [a, "
               "a], run: {command: [x]}}\n"),
             "4:26", "lists 'a' in needs twice"},
        Case{"cycle",
             T("  - {name: a, needs: [c], run: {command: [x]}}\n"
               "  - {name: b, needs: [a], run: {command: [x]}}\n"
               "  - {name: c, needs: [b], run: {command: [x]}}\n"),
             "4:23", "cycle: a -> c -> b -> a"},
        Case{"finally_needs_task",
             T("  - {name: a, run: {command: [x]}}\n") "finally:\n  - {name: "
                                                       "f, needs: [a], run: "
                                                       "{command: [x]}}\n",
             "5:23",
             "finally task 'f' may only need other finally tasks; 'a' is a "
             "regular task"},
        Case{"task_needs_finally",
             T("  - {name: a, needs: [f], run: {command: [x]}}\n") "finally:\n "
                                                                   " - {name: "
                                                                   "f, run: "
                                                                   "{command: "
                                                                   "[x]}}\n",
             "3:23", "task 'a' cannot need finally task 'f'"},
        Case{"bad_regex",
             T("  - {name: a, when: {branch: {regex: \"(\"}}, run: {command: "
               "[x]}}\n"),
             "3:38", "invalid regex /(/: missing )"},
        Case{"bad_message_regex",
             T("  - {name: a, when: {message: \"a[\"}, run: {command: [x]}}\n"),
             "3:31", "invalid regex /a[/"},
        Case{"bad_glob",
             T("  - {name: a, when: {branch: \"feat[\"}, run: {command: "
               "[x]}}\n"),
             "3:30", "invalid glob 'feat[': unterminated character class"},
        Case{"bad_param_regex",
             "name: p\nparams: [{name: e}]\ntasks:\n  - {name: a, when: "
             "{param: {name: e, matches: \"*\"}}, run: {command: [x]}}\n",
             "4:48", "invalid regex"},
        Case{"condition_unknown_param",
             "name: p\nparams: [{name: env}]\ntasks:\n  - {name: a, when: "
             "{param: {name: evn, equals: x}}, run: {command: [x]}}\n",
             "4:36", "condition on unknown param 'evn' (did you mean 'env'?)"},
        Case{"empty_any",
             T("  - {name: a, when: {any: []}, run: {command: [x]}}\n"), "3:27",
             "'any' needs at least one condition"},
        Case{"param_no_test",
             "name: p\nparams: [{name: e}]\ntasks:\n  - {name: a, when: "
             "{param: {name: e}}, run: {command: [x]}}\n",
             "4:29", "needs one of equals, not_equals or matches"},
        Case{
            "unknown_param_ref",
            T("  - {name: a, run: {command: [echo, \"${params.registy}\"]}}\n"),
            "3:37", "${params.registy} names unknown param 'registy'"},
        Case{"unknown_param_ref_suggests",
             "name: p\nparams: [{name: registry}]\ntasks:\n  - {name: a, run: "
             "{command: [\"${params.registy}\"]}}\n",
             "4:31", "(did you mean 'registry'?)"},
        Case{"malformed_ref",
             T("  - {name: a, run: {command: [\"${params.x\"]}}\n"), "3:31",
             "unterminated reference"},
        Case{"unknown_ref_form",
             T("  - {name: a, run: {command: [\"${HOME}\"]}}\n"), "3:31",
             "unknown reference '${HOME}'"},
        Case{"unknown_trigger_field",
             T("  - {name: a, run: {command: [\"${trigger.brnch}\"]}}\n"),
             "3:31", "names unknown trigger field 'brnch'"},
        Case{"ref_not_ancestor",
             TS("  - {name: img, containerize: {base: scratch}}\n"
                "  - {name: a, run: {command: "
                "[\"${tasks.img.outputs.digest}\"]}}\n"),
             "4:31", "which is not among the tasks it needs"},
        Case{"ref_unknown_key",
             TS("  - {name: img, containerize: {base: scratch}}\n"
                "  - {name: a, needs: [img], run: {command: "
                "[\"${tasks.img.outputs.sha}\"]}}\n"),
             "4:45",
             "a containerize task has no output 'sha'; known: digest, image"},
        Case{"ref_in_literal_field",
             T("  - {name: a, run: {command: [x]}, outputs: [{artifact: "
               "\"${params.x}\", paths: [a]}]}\n"),
             "3:57", "references (${...}) are not substituted in this field"},
        Case{"secret_in_argv",
             "name: p\nparams: [{name: tok, secret: true}]\ntasks:\n  - {name: "
             "a, run: {command: [\"${params.tok}\"]}}\n",
             "4:31",
             "secret param 'tok' may only be used in run.env values and "
             "containerize.auth.password"},
        Case{"artifact_unproduced",
             T("  - {name: a, inputs: [app], run: {command: [x]}}\n"), "3:24",
             "no task produces artifact 'app'"},
        Case{"artifact_not_needed",
             T("  - {name: a, outputs: [{artifact: app, paths: [out]}], run: "
               "{command: [x]}}\n"
               "  - {name: b, inputs: [app], run: {command: [x]}}\n"),
             "4:24",
             "consumes artifact 'app' produced by task 'a', which it does not "
             "need"},
        Case{"artifact_twice",
             T("  - {name: a, outputs: [{artifact: app, paths: [out]}], run: "
               "{command: [x]}}\n"
               "  - {name: b, outputs: [{artifact: app, paths: [out]}], run: "
               "{command: [x]}}\n"),
             "4:36", "artifact 'app' is already produced by task 'a'"},
        Case{"source_reserved",
             T("  - {name: a, stash: {artifact: source, from: .}}\n"), "3:22",
             "artifact 'source' is provided by the engine"},
        Case{"output_absolute",
             T("  - {name: a, outputs: [{artifact: app, paths: [/etc]}], run: "
               "{command: [x]}}\n"),
             "3:49", "output path '/etc' must be relative"},
        Case{"output_dotdot",
             T("  - {name: a, outputs: [{artifact: app, paths: [a/../../b]}], "
               "run: {command: [x]}}\n"),
             "3:49", "escapes its directory"},
        Case{"workdir_escape",
             T("  - {name: a, run: {command: [x], workdir: ../x}}\n"), "3:44",
             "workdir '../x' escapes"},
        Case{"env_name",
             T("  - {name: a, run: {command: [x], env: {1A: b}}}\n"), "3:41",
             "invalid environment variable name '1A'"},
        Case{"param_bad_default",
             "name: p\nparams: [{name: n, type: int, default: ten}]\ntasks:\n  "
             "- {name: a, run: {command: [x]}}\n",
             "2:40",
             "param n: invalid default: expected an integer, got 'ten'"},
        Case{"choice_default",
             "name: p\nparams: [{name: e, type: choice, choices: [dev, prod], "
             "default: stage}]\ntasks:\n  - {name: a, run: {command: [x]}}\n",
             "2:65", "'stage' is not one of the choices [dev, prod]"},
        Case{"choice_without_choices",
             "name: p\nparams: [{name: e, type: choice}]\ntasks:\n  - {name: "
             "a, run: {command: [x]}}\n",
             "2:10", "type choice needs a non-empty 'choices'"},
        Case{"duplicate_param",
             "name: p\nparams: [{name: e}, {name: e}]\ntasks:\n  - {name: a, "
             "run: {command: [x]}}\n",
             "2:28", "duplicate param 'e'"},
        Case{"deploy_manifests_unknown",
             TS("  - {name: d, deploy: {environment: e, manifests: nope}}\n"),
             "3:51", "no task produces artifact 'nope'"}));

#undef T

TEST(ValidateTest, ValidPipelinesHaveNoDiagnostics) {
  std::vector<Diagnostic> d = Check(R"(
name: ok
params: [{name: registry, default: r}, {name: tok, secret: true, default: ""}]
tasks:
  - name: build
    run: {command: [make], env: {TOKEN: "${params.tok}"}}
    inputs: [source]
    outputs: [{artifact: app, paths: [out/app]}]
  - name: img
    needs: [build]
    containerize:
      base: scratch
      layers: [{artifact: app, to: /bin}]
      push: "${params.registry}/x"
  - name: render
    needs: [img]
    render:
      kustomization: deploy
      images: [{name: x, digest: "${tasks.img.outputs.digest}"}]
  - name: deploy
    needs: [render]
    when: {all: [{branch: main}, {not: {message: "(?i)^wip"}}]}
    deploy: {environment: stage, manifests: render}
  - name: literal
    run: {command: [sh, -c, "echo $${HOME} $$ $PATH"]}
finally:
  - name: f1
    inputs: [app]
    run: {command: ["${tasks.img.outputs.image}"]}
  - name: f2
    needs: [f1]
    run: {command: [echo]}
options: {unsupported: skip}
)");
  EXPECT_TRUE(d.empty()) << JoinDiagnostics(d);
}

// No silent success: what this kiln cannot execute is refused before
// anything runs, at the field, unless the pipeline opts to skip it.
TEST(ValidateTest, RefusesUnsupportedKindsAndImages) {
  const std::string yaml =
      "name: p\ntasks:\n"
      "  - {name: img, containerize: {base: scratch, push: r/x}}\n"
      "  - {name: ship, deploy: {environment: e, overlay: o}}\n"
      "  - {name: go, run: {image: 'golang:1.22', command: [go]}}\n"
      "  - {name: gone, run: {image: 'golang:1.23', command: [go]}}\n"
      "  - {name: host, run: {image: host, command: [make]}}\n";
  std::vector<Diagnostic> d = Check(yaml);
  // containerize (push included) and deploy.overlay are supported now.
  ASSERT_EQ(d.size(), 2u) << JoinDiagnostics(d);
  EXPECT_THAT(d[0].ToString(),
              HasSubstr("v.yaml:5:29: task 'go': run.image 'golang:1.22' "
                        "cannot run here"));
  EXPECT_THAT(d[0].ToString(),
              HasSubstr("set options.unsupported: skip to skip them"));
  EXPECT_THAT(d[1].ToString(),
              HasSubstr("v.yaml:6:31: task 'gone': run.image 'golang:1.23' "
                        "cannot run here"));

  // Opting in skips them instead (at run time, with the reason).
  EXPECT_TRUE(Check(yaml + "options: {unsupported: skip}\n").empty());
  // An explicit `fail` is the default.
  EXPECT_EQ(Check(yaml + "options: {unsupported: fail}\n").size(), 2u);
}

TEST(ValidateTest, ImagesAreAcceptedWhenAnExecutorRunsThem) {
  LoadOptions options;
  options.validate = false;
  LoadedPipeline p = LoadPipelineText(
      "name: p\ntasks:\n  - {name: go, run: {image: 'golang:1.22', "
      "command: [go]}}\n",
      "v.yaml", options);
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  EXPECT_EQ(ValidatePipeline(p.pipeline, p.source_map.get()).size(), 1u);
  ExecCapabilities caps;
  caps.images = true;
  EXPECT_TRUE(ValidatePipeline(p.pipeline, p.source_map.get(), caps).empty());
}

TEST(ValidateTest, BadUnsupportedPolicyIsAPositionedError) {
  LoadedPipeline p = LoadPipelineText(
      "name: p\noptions: {unsupported: ignore}\ntasks:\n"
      "  - {name: a, run: {command: [x]}}\n",
      "v.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(JoinDiagnostics(p.errors), HasSubstr("v.yaml:2:24: "));
  EXPECT_THAT(JoinDiagnostics(p.errors), HasSubstr("fail, skip"));
}

TEST(ValidateTest, CollectsManyErrors) {
  std::vector<Diagnostic> d = Check(
      "name: p\ntasks:\n"
      "  - {name: a, needs: [zz], run: {command: [x]}}\n"
      "  - {name: b, needs: [b], run: {}}\n"
      "  - {name: a, run: {command: [x]}}\n");
  EXPECT_GE(d.size(), 4u) << JoinDiagnostics(d);
  for (size_t i = 1; i < d.size(); ++i) EXPECT_LE(d[i - 1].line, d[i].line);
}

TEST(ValidateTest, CycleNamesEveryTask) {
  std::vector<Diagnostic> d = Check(
      "name: p\ntasks:\n"
      "  - {name: a, needs: [b], run: {command: [x]}}\n"
      "  - {name: b, needs: [c], run: {command: [x]}}\n"
      "  - {name: c, needs: [d], run: {command: [x]}}\n"
      "  - {name: d, needs: [a], run: {command: [x]}}\n");
  ASSERT_EQ(d.size(), 1u) << JoinDiagnostics(d);
  EXPECT_THAT(d[0].message, HasSubstr("cycle: a -> b -> c -> d -> a"));
}

TEST(ValidateTest, WorksWithoutSourceMap) {
  v1::Pipeline p;
  p.set_name("x");
  v1::Task* t = p.add_tasks();
  t->set_name("a");
  t->add_needs("missing");
  t->mutable_run()->add_command("true");
  std::vector<Diagnostic> d = ValidatePipeline(p);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].path, "tasks[0].needs[0]");
  EXPECT_EQ(d[0].ToString(),
            "tasks[0].needs[0]: task 'a' needs unknown task 'missing'");
}

v1::Pipeline Chain(int tasks) {
  v1::Pipeline p;
  p.set_name("big");
  for (int i = 0; i < tasks; ++i) {
    v1::Task* t = p.add_tasks();
    t->set_name(absl::StrCat("t", i));
    if (i > 0) t->add_needs(absl::StrCat("t", i - 1));
    t->mutable_run()->add_command("true");
    if (i > 0) t->add_inputs()->set_artifact(absl::StrCat("a", i - 1));
    v1::ArtifactOutput* o = t->add_outputs();
    o->set_artifact(absl::StrCat("a", i));
    o->add_paths("out");
  }
  return p;
}

TEST(ValidateTest, LargeChainIsFast) {
  EXPECT_TRUE(ValidatePipeline(Chain(5000)).empty());
  // Four times the tasks, about four times the time (n log n is fine,
  // quadratic is not: ~16). A doubling read 3.1 once under ASan on a loaded
  // machine, against a bound of 3; the wider step keeps the two apart.
  v1::Pipeline small = Chain(2500), large = Chain(10000);
  double ratio = growth::QuadruplingRatio(
      [&](int n) { ValidatePipeline(n == 2500 ? small : large); }, 2500);
  EXPECT_LE(ratio, growth::kLinearQuadruplingBound);
}

}  // namespace
}  // namespace kiln::pipeline
