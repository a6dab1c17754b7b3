// `pod:` of a task: decoded into hints.pod, every value checked with the
// API's rules at its own FILE:LINE:COL.
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

LoadedPipeline Load(const std::string& pod_yaml) {
  return LoadPipelineText(absl::StrCat("name: p\n"
                                       "tasks:\n"
                                       "  - name: t\n"
                                       "    run:\n"
                                       "      image: busybox\n"
                                       "      command: [true]\n"
                                       "    pod:\n",
                                       pod_yaml),
                          "p.yaml");
}

TEST(DecodePod, EveryField) {
  LoadedPipeline p = Load(
      "      node_selector: {pool: ci, example.com/disk: ssd}\n"
      "      tolerations:\n"
      "        - {key: dedicated, value: ci, effect: NoExecute, "
      "toleration_seconds: 30}\n"
      "        - {operator: Exists}\n"
      "      affinity:\n"
      "        nodeAffinity:\n"
      "          preferredDuringSchedulingIgnoredDuringExecution:\n"
      "            - weight: 100\n"
      "              preference: {matchExpressions: [{key: zone, operator: "
      "In, values: [a]}]}\n"
      "      service_account: builder\n"
      "      image_pull_secrets: [regcred]\n"
      "      labels: {team: a}\n"
      "      annotations: {note: 'free text: ok'}\n"
      "      requests: {cpu: 500m, memory: 1Gi}\n"
      "      limits: {memory: 2Gi, nvidia.com/gpu: '1'}\n"
      "      runtime_class: gvisor\n");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  const v1::PodShape& pod = p.pipeline.tasks(0).hints().pod();
  EXPECT_EQ(pod.node_selector().at("pool"), "ci");
  EXPECT_EQ(pod.node_selector().at("example.com/disk"), "ssd");
  ASSERT_EQ(pod.tolerations_size(), 2);
  EXPECT_EQ(pod.tolerations(0).effect(), "NoExecute");
  EXPECT_EQ(pod.tolerations(0).toleration_seconds(), 30);
  EXPECT_EQ(pod.tolerations(1).operator_(), "Exists");
  nlohmann::json affinity = nlohmann::json::parse(pod.affinity_json());
  EXPECT_EQ(
      affinity["nodeAffinity"]
              ["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
      100);
  EXPECT_EQ(pod.service_account(), "builder");
  EXPECT_EQ(pod.image_pull_secrets(0), "regcred");
  EXPECT_EQ(pod.labels().at("team"), "a");
  EXPECT_EQ(pod.annotations().at("note"), "free text: ok");
  EXPECT_EQ(pod.requests().at("cpu"), "500m");
  EXPECT_EQ(pod.limits().at("nvidia.com/gpu"), "1");
  EXPECT_EQ(pod.runtime_class(), "gvisor");
}

struct BadCase {
  const char* yaml;
  const char* where;
  const char* message;
};

class DecodePodErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(DecodePodErrorTest, PositionedError) {
  const BadCase& c = GetParam();
  LoadedPipeline p = Load(c.yaml);
  ASSERT_FALSE(p.ok()) << c.yaml;
  std::string first = p.errors.front().ToString();
  EXPECT_THAT(first, HasSubstr(absl::StrCat("p.yaml:", c.where, ": ")))
      << first;
  EXPECT_THAT(first, HasSubstr(c.message)) << first;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DecodePodErrorTest,
    ::testing::Values(
        BadCase{"      labels: {'bad key': x}\n", "8:16",
                "tasks[0].pod.labels: key 'bad key' is invalid"},
        BadCase{"      labels:\n        kiln.dev/run: x\n", "9:9",
                "key 'kiln.dev/run' is invalid: kiln sets this key itself"},
        BadCase{"      node_selector: {pool: 'a b'}\n", "8:29",
                "tasks[0].pod.node_selector.pool: value 'a b' is invalid"},
        BadCase{"      node_selector: {kubernetes.io/arch: arm64}\n", "8:23",
                "kubernetes.io/arch is the executor's"},
        BadCase{"      tolerations:\n        - {key: x, effect: NoScheduel}\n",
                "9:11",
                "tasks[0].pod.tolerations[0]: effect 'NoScheduel' is "
                "invalid: must be NoSchedule, PreferNoSchedule or NoExecute"},
        BadCase{"      tolerations:\n        - {key: x, efect: NoSchedule}\n",
                "9:20", "unknown field 'efect'"},
        BadCase{"      affinity: {nodeAfinity: {}}\n", "8:17",
                "affinity: unknown field 'nodeAfinity'"},
        BadCase{"      requests: {cpu: lots}\n", "8:23",
                "tasks[0].pod.requests.cpu: quantity 'lots' is invalid"},
        BadCase{"      limits: {gpu: 1}\n", "8:16",
                "resource 'gpu' is invalid"},
        BadCase{"      service_account: Builder\n", "8:24",
                "name 'Builder' is invalid"},
        BadCase{"      image_pull_secrets: [ok, 'Not OK']\n", "8:32",
                "tasks[0].pod.image_pull_secrets[1]: name 'Not OK' is invalid"},
        BadCase{"      runtimeclass: gvisor\n", "8:7",
                "unknown field 'runtimeclass'"}));

}  // namespace
}  // namespace kiln::pipeline
