#include "engine/pipeline/loader.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

LoadedPipeline Load(const std::string& yaml) {
  return LoadPipelineText(yaml, "p.yaml");
}

std::string Errors(const LoadedPipeline& p) {
  return JoinDiagnostics(p.errors);
}

TEST(LoaderTest, LoadsEveryField) {
  LoadedPipeline p = Load(R"(
name: demo
params:
  - {name: registry, default: "localhost:5000", description: where}
  - {name: env, type: choice, choices: [dev, prod], default: dev}
  - {name: token, secret: true, default: ""}
  - {name: n, type: int, default: 3}
options: {on_failure: continue, timeout: 1h30m, finally_timeout: 90s, unsupported: skip}
tasks:
  - name: build
    run:
      role: compile
      image: host
      command: [make, build]
      env: {CC: gcc, TOKEN: "${params.token}"}
      workdir: src
      network: true
      report: out/junit.xml
    inputs: [source, {artifact: source, path: copy}]
    outputs: [{artifact: app, paths: [out/app, out/lib]}]
    retries: 2
    timeout: 10m
    resources: {memory: 512Mi, max_pids: 64, max_log_bytes: 1M}
    cache: false
  - name: img
    needs: [build]
    run_if_needs_skipped: true
    containerize:
      base: scratch
      layers: [{artifact: app, to: /usr/local/bin}]
      entrypoint: [/usr/local/bin/app]
      cmd: [--serve]
      env: [{name: A, value: b}]
      labels: {org.example/rev: "${trigger.revision}"}
      workdir: /
      user: "1000"
      push: ${params.registry}/demo
      artifact: demo-image
      platform: linux/amd64
  - name: render
    needs: [img]
    render:
      kustomization: {artifact: source, path: deploy/overlays/stage}
      namespace: demo-${trigger.branch_slug}
      images: [{name: demo, new_name: r/demo, new_tag: v1, digest: "${tasks.img.outputs.digest}"}]
      labels: {team: a}
      name_prefix: p-
      name_suffix: -s
  - name: ship
    needs: [render]
    when: {branch: main, event: [push, tag]}
    deploy: {environment: stage, kind: permanent, manifests: render, namespace: ns, context: kind, wait: true}
  - name: stash-it
    stash: {artifact: docs, from: docs, exclude: ["*.tmp"]}
  - name: unstash-it
    needs: [stash-it]
    unstash: {artifact: docs, to: out/docs}
finally:
  - name: cleanup
    run: {command: [echo, done]}
)");
  ASSERT_TRUE(p.ok()) << Errors(p);
  const v1::Pipeline& pl = p.pipeline;
  EXPECT_EQ(pl.name(), "demo");
  ASSERT_EQ(pl.params_size(), 4);
  EXPECT_EQ(pl.params(0).default_(), "localhost:5000");
  EXPECT_EQ(pl.params(1).type(), v1::CHOICE);
  EXPECT_EQ(pl.params(1).choices_size(), 2);
  EXPECT_TRUE(pl.params(2).secret());
  EXPECT_TRUE(pl.params(2).has_default_());
  EXPECT_EQ(pl.params(3).type(), v1::INT);
  EXPECT_EQ(pl.options().on_failure(), v1::CONTINUE);
  EXPECT_EQ(pl.options().timeout().seconds(), 5400);
  EXPECT_EQ(pl.options().finally_timeout().seconds(), 90);
  EXPECT_EQ(pl.options().unsupported(), v1::SKIP);
  const v1::Task& build = pl.tasks(0);
  EXPECT_EQ(build.run().role(), v1::COMPILE);
  EXPECT_EQ(build.run().command_size(), 2);
  ASSERT_EQ(build.run().env_size(), 2);
  EXPECT_EQ(build.run().env(1).name(), "TOKEN");
  EXPECT_EQ(build.run().env(1).value(), "${params.token}");
  EXPECT_TRUE(build.run().network());
  EXPECT_EQ(build.inputs(0).artifact(), "source");
  EXPECT_EQ(build.inputs(1).path(), "copy");
  EXPECT_EQ(build.outputs(0).paths(1), "out/lib");
  EXPECT_EQ(build.hints().retries(), 2u);
  EXPECT_EQ(build.hints().timeout().seconds(), 600);
  EXPECT_EQ(build.hints().resources().memory_bytes(), 512u << 20);
  EXPECT_EQ(build.hints().resources().max_pids(), 64u);
  EXPECT_EQ(build.hints().resources().max_log_bytes(), 1000000u);
  EXPECT_TRUE(build.has_cache());
  EXPECT_FALSE(build.cache());
  const v1::Task& img = pl.tasks(1);
  EXPECT_TRUE(img.run_if_needs_skipped());
  EXPECT_EQ(img.containerize().layers(0).to(), "/usr/local/bin");
  EXPECT_EQ(img.containerize().labels(0).key(), "org.example/rev");
  EXPECT_EQ(img.containerize().user(), "1000");
  EXPECT_EQ(img.containerize().env(0).value(), "b");
  const v1::Task& render = pl.tasks(2);
  EXPECT_EQ(render.render().kustomization().path(), "deploy/overlays/stage");
  EXPECT_EQ(render.render().images(0).digest(), "${tasks.img.outputs.digest}");
  const v1::Task& ship = pl.tasks(3);
  EXPECT_EQ(ship.deploy().kind(), v1::PERMANENT);
  EXPECT_TRUE(ship.deploy().wait());
  ASSERT_EQ(ship.when().kind_case(), v1::Condition::kAll);
  EXPECT_EQ(ship.when().all().conditions(0).branch().pattern(), "main");
  EXPECT_EQ(ship.when().all().conditions(1).event().events_size(), 2);
  EXPECT_EQ(pl.tasks(4).stash().exclude(0), "*.tmp");
  EXPECT_EQ(pl.tasks(5).unstash().to(), "out/docs");
  EXPECT_EQ(pl.finally(0).name(), "cleanup");
  EXPECT_EQ(p.base_dir, ".");
}

TEST(LoaderTest, SourceMapPositionsFields) {
  LoadedPipeline p = Load(
      "name: x\n"
      "tasks:\n"
      "  - name: a\n"
      "    run: {command: [\"true\"]}\n"
      "  - name: b\n"
      "    needs: [a]\n"
      "    when: {branch: {regex: \"^r\"}}\n"
      "    run: {command: [echo, \"${trigger.branch}\"]}\n");
  ASSERT_TRUE(p.ok()) << Errors(p);
  int line = 0, col = 0;
  ASSERT_TRUE(p.source_map->Lookup("tasks[1]", &line, &col));
  EXPECT_EQ(line, 5);
  EXPECT_EQ(col, 5);
  ASSERT_TRUE(p.source_map->Lookup("tasks[1].needs[0]", &line, &col));
  EXPECT_EQ(line, 6);
  EXPECT_EQ(col, 13);
  ASSERT_TRUE(
      p.source_map->Lookup("tasks[1].when.branch.pattern", &line, &col));
  EXPECT_EQ(line, 7);
  EXPECT_EQ(col, 28);
  ASSERT_TRUE(p.source_map->Lookup("tasks[1].run.command[1]", &line, &col));
  EXPECT_EQ(line, 8);
  EXPECT_EQ(col, 27);
  // An unrecorded path falls back to its nearest recorded ancestor.
  ASSERT_TRUE(p.source_map->Lookup("tasks[1].run.nothing[3]", &line, &col));
  EXPECT_EQ(line, 8);
}

struct BadCase {
  const char* name;
  const char* yaml;
  const char* where;  // "LINE:COL" of the first diagnostic
  const char* message;
};

class LoaderErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(LoaderErrorTest, FirstDiagnostic) {
  const BadCase& c = GetParam();
  LoadedPipeline p = Load(c.yaml);
  ASSERT_FALSE(p.ok()) << c.name;
  std::string first = p.errors.front().ToString();
  EXPECT_THAT(first, HasSubstr(absl::StrCat("p.yaml:", c.where, ": ")))
      << first;
  EXPECT_THAT(first, HasSubstr(c.message)) << first;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LoaderErrorTest,
    ::testing::Values(
        BadCase{"empty", "", "1:1", "the pipeline file is empty"},
        BadCase{"not_a_mapping", "- a\n- b\n", "1:1",
                "expected a mapping, got a sequence"},
        BadCase{"unknown_top", "name: x\ntask: []\n", "2:1",
                "unknown field 'task' in the pipeline (did you mean 'tasks'?)"},
        BadCase{"unknown_task_field",
                "name: x\ntasks:\n  - name: a\n    neds: [b]\n", "4:5",
                "unknown field 'neds' in tasks[0] (did you mean 'needs'?)"},
        BadCase{"no_suggestion",
                "name: x\ntasks:\n  - name: a\n    zzzzzz: 1\n", "4:5",
                "unknown field 'zzzzzz' in tasks[0]; allowed: name"},
        BadCase{"tasks_mapping", "name: x\ntasks:\n  a: 1\n", "3:3",
                "tasks: expected a sequence, got a mapping"},
        BadCase{"needs_scalar", "name: x\ntasks:\n  - name: a\n    needs: b\n",
                "4:12",
                "tasks[0].needs: expected a sequence, got a scalar 'b'"},
        BadCase{"name_mapping", "name: {a: 1}\ntasks: []\n", "1:7",
                "name: expected a string, got a mapping"},
        BadCase{"null_string", "name:\ntasks: []\n", "2:1",
                "name: expected a string, got null"},
        BadCase{"bad_bool", "name: x\ntasks:\n  - name: a\n    cache: \"no\"\n",
                "4:12", "expected true or false"},
        BadCase{"bad_int", "name: x\ntasks:\n  - name: a\n    retries: -1\n",
                "4:14", "expected a non-negative integer"},
        BadCase{"too_many_retries",
                "name: x\ntasks:\n  - name: a\n    retries: 1000\n", "4:14",
                "exceeds the maximum of 100"},
        BadCase{"bad_duration",
                "name: x\ntasks:\n  - name: a\n    timeout: 10x\n", "4:14",
                "invalid duration '10x'"},
        BadCase{"duration_no_unit",
                "name: x\ntasks:\n  - name: a\n    timeout: 90\n", "4:14",
                "invalid duration '90'"},
        BadCase{"duration_order",
                "name: x\ntasks:\n  - name: a\n    timeout: 30s1m\n", "4:14",
                "invalid duration"},
        BadCase{"bad_size",
                "name: x\ntasks:\n  - name: a\n    resources: {memory: 1Q}\n",
                "4:25", "invalid size '1Q'"},
        BadCase{"bad_enum",
                "name: x\ntasks:\n  - name: a\n    run: {role: compil}\n",
                "4:17",
                "unknown role 'compil'; allowed: compile, test (did you mean "
                "'compile'?)"},
        BadCase{
            "bad_event",
            "name: x\ntasks:\n  - name: a\n    when: {event: merge}\n", "4:19",
            "unknown event 'merge'; allowed: push, pull_request, tag, manual, "
            "pull_request_closed, branch_deleted"},
        BadCase{
            "bad_param_type", "name: x\nparams: [{name: a, type: float}]\n",
            "2:26",
            "unknown param type 'float'; allowed: string, bool, int, choice"},
        BadCase{
            "two_kinds",
            "name: x\ntasks:\n  - name: a\n    run: {command: [x]}\n"
            "    stash: {artifact: a, from: b}\n",
            "5:12",
            "a task has exactly one kind, but 'run' and 'stash' are both set"},
        BadCase{"duplicate_key", "name: x\nname: y\n", "2:1",
                "duplicate key \"name\""},
        BadCase{"second_document", "name: x\n---\nname: y\n", "3:1",
                "a second YAML document"},
        BadCase{"junk_after", "name: x\n]\n", "2:1", ""},
        BadCase{"alias_cycle", "a: &a [*a]\n", "1:8", "alias"},
        BadCase{"string_match_two_keys",
                "name: x\ntasks:\n  - name: a\n    when: {branch: {glob: a, "
                "regex: b}}\n",
                "4:20", "expected exactly one of glob, regex, exact or not"},
        BadCase{"param_two_tests",
                "name: x\ntasks:\n  - name: a\n    when: {param: {name: p, "
                "equals: a, "
                "matches: b}}\n",
                "4:49",
                "expected exactly one of equals, not_equals or matches"},
        BadCase{
            "condition_unknown_key",
            "name: x\ntasks:\n  - name: a\n    when: {brnch: main}\n", "4:12",
            "unknown field 'brnch' in tasks[0].when (did you mean 'branch'?)"},
        BadCase{
            "env_not_mapping",
            "name: x\ntasks:\n  - name: a\n    run: {command: [x], env: 3}\n",
            "4:30", "expected a mapping of NAME: value"},
        // Validation runs after a clean decode, with positions.
        BadCase{"validation_positioned",
                "name: x\ntasks:\n  - name: a\n    needs: [b]\n    run: "
                "{command: [x]}\n",
                "4:13", "task 'a' needs unknown task 'b'"}));

TEST(LoaderTest, ReportsAllDecodeErrors) {
  LoadedPipeline p = Load(
      "name: x\n"
      "tasks:\n"
      "  - name: a\n"
      "    neds: [b]\n"
      "    timeout: 10x\n"
      "    run: {comand: [x], role: compil}\n");
  ASSERT_EQ(p.errors.size(), 4u) << Errors(p);
  EXPECT_EQ(p.errors[0].line, 4);
  EXPECT_EQ(p.errors[1].line, 5);
  EXPECT_EQ(p.errors[2].line, 6);
  EXPECT_EQ(p.errors[3].line, 6);
  EXPECT_LT(p.errors[2].column, p.errors[3].column);
}

TEST(LoaderTest, LimitsAreEnforced) {
  LoadOptions options;
  options.max_file_bytes = 100;
  LoadedPipeline big =
      LoadPipelineText(std::string(200, '#'), "big.yaml", options);
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.errors[0].ToString(),
              HasSubstr("big.yaml:1:1: file of 200 bytes"));

  std::string deep = "name: x\ntasks: ";
  for (int i = 0; i < 200; ++i) deep += "[";
  LoadedPipeline nested = Load(deep);
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(nested.errors[0].message, HasSubstr("nesting deeper than"));

  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c, ++prev) {
    laughs +=
        absl::StrCat(std::string(1, c), ": &", std::string(1, c), " [*",
                     std::string(1, prev), ", *", std::string(1, prev), ", *",
                     std::string(1, prev), ", *", std::string(1, prev), ", *",
                     std::string(1, prev), ", *", std::string(1, prev), ", *",
                     std::string(1, prev), ", *", std::string(1, prev), ", *",
                     std::string(1, prev), "]\n");
  }
  LoadedPipeline bomb = Load(laughs);
  ASSERT_FALSE(bomb.ok());
  EXPECT_THAT(bomb.errors[0].message,
              HasSubstr("nodes (after expanding aliases)"));
}

// A pipeline of `tasks` independent tasks of ~30 nodes and ~330 bytes.
std::string WidePipeline(int tasks) {
  const std::string pad(200, 'p');
  std::string y = "name: wide\ntasks:\n";
  for (int i = 0; i < tasks; ++i) {
    absl::StrAppend(&y, "  - {name: t", i, ", run: {env: {PAD: ", pad,
                    "}, command: [/bin/echo");
    for (int a = 0; a < 20; ++a) absl::StrAppend(&y, ", a", a);
    y += "]}}\n";
  }
  return y;
}

TEST(LoaderTest, LocalFilesGetGenerousBoundsTheNetworkTightOnes) {
  // 4,000 tasks: ~1.3 MB and ~120,000 nodes, over the network bounds.
  const std::string big = WidePipeline(4000);
  ASSERT_GT(big.size(), size_t{1} << 20);
  LoadedPipeline network = LoadPipelineText(big, "dag.yaml");
  ASSERT_FALSE(network.ok());
  EXPECT_THAT(network.errors[0].ToString(),
              HasSubstr("dag.yaml:1:1: file of "));
  LoadOptions nodes_only;  // the network's node budget alone
  nodes_only.max_file_bytes = LoadOptions::kLocalMaxFileBytes;
  network = LoadPipelineText(big, "dag.yaml", nodes_only);
  ASSERT_FALSE(network.ok());
  EXPECT_THAT(network.errors[0].message, HasSubstr("more than 100000 nodes"));

  LoadedPipeline local =
      LoadPipelineText(big, "dag.yaml", LoadOptions::LocalFile());
  ASSERT_TRUE(local.ok()) << local.errors[0].ToString();
  EXPECT_EQ(local.pipeline.tasks_size(), 4000);

  // Still bounded: the local bounds are finite, and lowered they refuse.
  LoadOptions lowered = LoadOptions::LocalFile();
  lowered.max_nodes = 110000;
  local = LoadPipelineText(big, "dag.yaml", lowered);
  ASSERT_FALSE(local.ok());
  EXPECT_THAT(local.errors[0].message, HasSubstr("more than 110000 nodes"));
  lowered = LoadOptions::LocalFile();
  lowered.max_file_bytes = big.size() - 1;
  local = LoadPipelineText(big, "dag.yaml", lowered);
  ASSERT_FALSE(local.ok());
  EXPECT_THAT(local.errors[0].ToString(), HasSubstr("dag.yaml:1:1: file of "));
}

TEST(LoaderTest, AliasBombsStopEarlyUnderLocalBounds) {
  // Ten levels of ten: 10^10 nodes. With a 10 M node budget the alias
  // budget (100,000) stops it, at the alias that passes it.
  std::string laughs = "name: lol\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level < 10; ++level) {
    absl::StrAppend(&laughs, "a", level, ": &a", level, " [");
    for (int i = 0; i < 10; ++i) {
      absl::StrAppend(&laughs, i ? ", " : "", "*a", level - 1);
    }
    laughs += "]\n";
  }
  laughs += "tasks: *a9\n";
  LoadedPipeline bomb =
      LoadPipelineText(laughs, "lol.yaml", LoadOptions::LocalFile());
  ASSERT_FALSE(bomb.ok());
  EXPECT_THAT(bomb.errors[0].ToString(),
              HasSubstr("lol.yaml:6:45: aliases expand to more than 100000 "
                        "nodes"));
}

TEST(LoaderTest, AliasesWithinBudgetWork) {
  LoadedPipeline p = Load(
      "name: x\n"
      "tasks:\n"
      "  - name: a\n"
      "    run: &r {command: [make]}\n"
      "  - name: b\n"
      "    run: *r\n");
  ASSERT_TRUE(p.ok()) << Errors(p);
  EXPECT_EQ(p.pipeline.tasks(1).run().command(0), "make");
}

TEST(LoaderTest, FileErrors) {
  LoadedPipeline missing = LoadPipelineFile("no/such/file.yaml");
  // The pipeline knows its file (left out of `source`), relative to base_dir.
  EXPECT_EQ(LoadPipelineText("name: x\n", "dir/sub/kiln.yaml").pipeline.file(),
            "kiln.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.errors[0].ToString(),
              HasSubstr("no/such/file.yaml:1:1: "));
  EXPECT_EQ(missing.base_dir, "no/such");
}

TEST(LoaderTest, ShorthandsMatchLongForms) {
  LoadedPipeline p = Load(
      "name: x\n"
      "tasks:\n"
      "  - name: r\n"
      "    render: {kustomization: deploy/x}\n"
      "    when: {branch: {not: {regex: \"^a\"}}}\n");
  ASSERT_TRUE(p.ok()) << Errors(p);
  const v1::Task& t = p.pipeline.tasks(0);
  EXPECT_EQ(t.render().kustomization().artifact(), "source");
  EXPECT_EQ(t.render().kustomization().path(), "deploy/x");
  EXPECT_EQ(t.when().branch().kind(), v1::StringMatch::REGEX);
  EXPECT_TRUE(t.when().branch().negate());
  EXPECT_EQ(t.when().branch().pattern(), "^a");
}

}  // namespace
}  // namespace kiln::pipeline
