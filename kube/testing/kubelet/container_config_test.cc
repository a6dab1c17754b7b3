// The simulated kubelet's container configuration: argv, env from values
// and secrets (CreateContainerConfigError when missing), volume binds,
// where the termination message is read, and Kubernetes' truncation.
#include "kube/testing/kubelet/container_config.h"

#include "gtest/gtest.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using json = nlohmann::json;

json Pod() {
  return json::parse(R"({
    "metadata": {"name": "p", "namespace": "ci"},
    "spec": {"terminationGracePeriodSeconds": 7}})");
}

json Container() {
  return json::parse(R"({
    "name": "task", "image": "r/i@sha256:00",
    "command": ["/bin/sh", "-c"], "args": ["echo hi"],
    "workingDir": "/workspace/sub",
    "env": [{"name": "A", "value": "1"},
            {"name": "T", "valueFrom": {"secretKeyRef":
                {"name": "tok", "key": "token"}}}],
    "volumeMounts": [{"name": "kiln", "mountPath": "/kiln"},
                     {"name": "workspace", "mountPath": "/workspace"}],
    "terminationMessagePath": "/kiln/result.json"})");
}

const std::map<std::string, std::string> kVolumes = {{"kiln", "/host/kiln"},
                                                     {"workspace", "/host/ws"}};

absl::StatusOr<std::map<std::string, std::string>> Secrets(
    const std::string& name) {
  if (name == "tok") return std::map<std::string, std::string>{{"token", "s"}};
  return absl::NotFoundError(name);
}

TEST(ContainerConfigTest, BuildsArgvEnvBindsAndTheMessageFile) {
  ConfigResult r = BuildContainerConfig(Pod(), Container(), kVolumes, Secrets);
  ASSERT_TRUE(r.config.has_value()) << r.error.message;
  const ContainerConfig& c = *r.config;
  EXPECT_EQ(c.argv, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(c.env,
            (std::map<std::string, std::string>{{"A", "1"}, {"T", "s"}}));
  EXPECT_EQ(c.working_dir, "/workspace/sub");
  ASSERT_EQ(c.binds.size(), 2u);
  EXPECT_EQ(c.binds[0].host, "/host/kiln");
  EXPECT_EQ(c.binds[0].target, "/kiln");
  EXPECT_EQ(c.message_volume_dir, "/host/kiln");
  EXPECT_EQ(c.message_relative_path, "result.json");
  EXPECT_EQ(c.grace_seconds, 7);
  EXPECT_FALSE(c.fallback_to_logs);
}

TEST(ContainerConfigTest, AMissingSecretOrKeyIsCreateContainerConfigError) {
  json c = Container();
  c["env"][1]["valueFrom"]["secretKeyRef"]["name"] = "gone";
  ConfigResult r = BuildContainerConfig(Pod(), c, kVolumes, Secrets);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.error.reason, "CreateContainerConfigError");
  EXPECT_EQ(r.error.message, "secret \"gone\" not found");
  c["env"][1]["valueFrom"]["secretKeyRef"] = {{"name", "tok"}, {"key", "x"}};
  r = BuildContainerConfig(Pod(), c, kVolumes, Secrets);
  EXPECT_EQ(r.error.reason, "CreateContainerConfigError");
  EXPECT_EQ(r.error.message, "couldn't find key x in Secret ci/tok");
  // optional: the variable is left out.
  c["env"][1]["valueFrom"]["secretKeyRef"]["optional"] = true;
  r = BuildContainerConfig(Pod(), c, kVolumes, Secrets);
  ASSERT_TRUE(r.config.has_value());
  EXPECT_EQ(r.config->env.count("T"), 0u);
}

TEST(ContainerConfigTest, RefusesWhatTheSandboxKubeletDoesNotModel) {
  json c = Container();
  c.erase("command");
  EXPECT_EQ(BuildContainerConfig(Pod(), c, kVolumes, Secrets).error.reason,
            "CreateContainerError");
  c = Container();
  c["volumeMounts"][0]["name"] = "hostpath";
  EXPECT_EQ(BuildContainerConfig(Pod(), c, kVolumes, Secrets).error.reason,
            "CreateContainerConfigError");
  c = Container();
  c["volumeMounts"][0]["subPath"] = "x";
  EXPECT_EQ(BuildContainerConfig(Pod(), c, kVolumes, Secrets).error.reason,
            "CreateContainerConfigError");
  c = Container();
  c["volumeMounts"][0]["mountPath"] = "/kiln/../etc";
  EXPECT_EQ(BuildContainerConfig(Pod(), c, kVolumes, Secrets).error.reason,
            "CreateContainerConfigError");
  // A message path outside every emptyDir cannot be read.
  c = Container();
  c["terminationMessagePath"] = "/etc/result.json";
  ConfigResult r = BuildContainerConfig(Pod(), c, kVolumes, Secrets);
  EXPECT_EQ(r.error.reason, "CreateContainerConfigError");
  EXPECT_NE(r.error.message.find("emptyDir"), std::string::npos);
  // The default path, outside every volume: no message, no error.
  c.erase("terminationMessagePath");
  r = BuildContainerConfig(Pod(), c, kVolumes, Secrets);
  ASSERT_TRUE(r.config.has_value());
  EXPECT_TRUE(r.config->message_relative_path.empty());
}

TEST(ContainerConfigTest, TheDeepestMountHoldsTheMessage) {
  json c = Container();
  c["volumeMounts"][1]["mountPath"] = "/kiln/inner";
  c["terminationMessagePath"] = "/kiln/inner/m";
  ConfigResult r = BuildContainerConfig(Pod(), c, kVolumes, Secrets);
  ASSERT_TRUE(r.config.has_value()) << r.error.message;
  EXPECT_EQ(r.config->message_volume_dir, "/host/ws");
  EXPECT_EQ(r.config->message_relative_path, "m");
}

TEST(ContainerConfigTest, MessagesAreTruncatedAsKubernetesDoes) {
  EXPECT_EQ(TruncateTerminationMessage(std::string(5000, 'x')).size(), 4096u);
  EXPECT_EQ(TruncateTerminationMessage("short"), "short");
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i) lines.push_back("line " + std::to_string(i));
  std::string tail = LogTailMessage(lines);
  EXPECT_EQ(tail.substr(0, 7), "line 20");
  EXPECT_EQ(tail.substr(tail.size() - 7), "line 99");
  EXPECT_EQ(LogTailMessage({std::string(3000, 'y')}).size(), 2048u);
}

}  // namespace
}  // namespace testing
}  // namespace kube
}  // namespace kiln
