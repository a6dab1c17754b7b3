#include "executors/kubernetes/pod_result.h"

#include "gtest/gtest.h"

namespace kiln {
namespace kubernetes {
namespace {

using json = nlohmann::json;
using Stage = PodView::Stage;

json Pod(const std::string& status_json) {
  return {{"metadata", {{"name", "p"}}}, {"status", json::parse(status_json)}};
}

json Terminated(const std::string& name, int code, const std::string& reason,
                const std::string& message) {
  return {{"name", name},
          {"state",
           {{"terminated",
             {{"exitCode", code}, {"reason", reason}, {"message", message}}}}}};
}

json WithContainers(const std::string& phase, json init, json main) {
  json status = {{"phase", phase}};
  if (!init.is_null()) status["initContainerStatuses"] = json::array({init});
  if (!main.is_null()) status["containerStatuses"] = json::array({main});
  return {{"status", status}};
}

const char kOk[] =
    R"({"v":1,"status":"EXITED","exit_code":0,"signal":0,"message":"",
        "outputs":{"bin":{"tree":"sha256:t","archive":"sha256:a"}},
        "report":{"tree":"sha256:rt","archive":"sha256:ra"},
        "warnings":["w1"]})";

TEST(ParseAgentReport, Valid) {
  auto r = ParseAgentReport(kOk);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, "EXITED");
  EXPECT_EQ(r->outputs.at("bin").tree, "sha256:t");
  EXPECT_EQ(r->outputs.at("bin").archive, "sha256:a");
  ASSERT_TRUE(r->report.has_value());
  EXPECT_EQ(r->report->archive, "sha256:ra");
  EXPECT_EQ(r->warnings, std::vector<std::string>{"w1"});
}

TEST(ParseAgentReport, Invalid) {
  EXPECT_FALSE(ParseAgentReport("").ok());
  EXPECT_FALSE(ParseAgentReport("[]").ok());
  EXPECT_FALSE(ParseAgentReport(R"({"v":2,"status":"EXITED"})").ok());
  EXPECT_FALSE(ParseAgentReport(R"({"v":1,"status":"WHAT"})").ok());
  EXPECT_FALSE(
      ParseAgentReport(R"({"v":1,"status":"EXITED","exit_code":"0"})").ok());
  EXPECT_FALSE(
      ParseAgentReport(R"({"v":1,"status":"EXITED","outputs":{"a":1}})").ok());
}

TEST(ViewPod, PendingWithReason) {
  PodView v = ViewPod(Pod(R"({"phase":"Pending","conditions":[
      {"type":"PodScheduled","status":"False","reason":"Unschedulable",
       "message":"0/3 nodes are available"}]})"));
  EXPECT_EQ(v.stage, Stage::kPending);
  EXPECT_EQ(v.pending_reason, "Unschedulable: 0/3 nodes are available");
  EXPECT_EQ(ViewPod(json::object()).stage, Stage::kPending);
}

TEST(ViewPod, Running) {
  PodView v = ViewPod(WithContainers(
      "Running", Terminated("kiln-fetch", 0, "Completed", "{}"),
      {{"name", "task"}, {"state", {{"running", json::object()}}}}));
  EXPECT_EQ(v.stage, Stage::kRunning);
}

TEST(ViewPod, SucceededWithOutputs) {
  PodView v = ViewPod(
      WithContainers("Succeeded", Terminated("kiln-fetch", 0, "Completed", ""),
                     Terminated("task", 0, "Completed", kOk)));
  ASSERT_EQ(v.stage, Stage::kFinished);
  EXPECT_EQ(v.result.status(), v1::EXITED);
  EXPECT_EQ(v.result.exit_code(), 0);
  ASSERT_TRUE(v.agent.has_value());
  EXPECT_EQ(v.agent->outputs.size(), 1u);
  ASSERT_EQ(v.result.warnings_size(), 1);
}

TEST(ViewPod, FailedWithExitCode) {
  PodView v = ViewPod(
      WithContainers("Failed", json(),
                     Terminated("task", 3, "Error",
                                R"({"v":1,"status":"EXITED","exit_code":3})")));
  ASSERT_EQ(v.stage, Stage::kFinished);
  EXPECT_EQ(v.result.status(), v1::EXITED);
  EXPECT_EQ(v.result.exit_code(), 3);
}

TEST(ViewPod, AgentStatuses) {
  struct Case {
    const char* json;
    v1::ExecStatus want;
  } cases[] = {
      {R"({"v":1,"status":"SIGNALED","exit_code":137,"signal":9})",
       v1::SIGNALED},
      {R"({"v":1,"status":"TIMED_OUT","message":"after 1s"})", v1::TIMED_OUT},
      {R"({"v":1,"status":"OUTPUTS_FAILED","message":"output 'x': path 'y' was not produced"})",
       v1::OUTPUTS_FAILED},
  };
  for (const auto& c : cases) {
    PodView v = ViewPod(WithContainers("Failed", json(),
                                       Terminated("task", 1, "Error", c.json)));
    EXPECT_EQ(v.result.status(), c.want) << c.json;
  }
  PodView sig = ViewPod(WithContainers(
      "Failed", json(), Terminated("task", 137, "Error", cases[0].json)));
  EXPECT_EQ(sig.result.signal(), 9);
  PodView out = ViewPod(WithContainers(
      "Failed", json(), Terminated("task", 1, "Error", cases[2].json)));
  EXPECT_EQ(out.result.message(), "output 'x': path 'y' was not produced");
}

TEST(ViewPod, InitContainerFailure) {
  PodView v = ViewPod(WithContainers(
      "Failed",
      Terminated(
          "kiln-fetch", 1, "Error",
          R"({"v":1,"status":"INPUTS_FAILED","message":"input 'src': digest mismatch"})"),
      json()));
  ASSERT_EQ(v.stage, Stage::kFinished);
  EXPECT_EQ(v.result.status(), v1::INPUTS_FAILED);
  EXPECT_EQ(v.result.message(), "input 'src': digest mismatch");
  PodView bare = ViewPod(WithContainers(
      "Failed", Terminated("kiln-fetch", 127, "Error", "not json"), json()));
  EXPECT_EQ(bare.result.status(), v1::INPUTS_FAILED);
  EXPECT_NE(bare.result.message().find("kiln-fetch exited 127"),
            std::string::npos)
      << bare.result.message();
}

TEST(ViewPod, OomKilled) {
  PodView v = ViewPod(WithContainers("Failed", json(),
                                     Terminated("task", 137, "OOMKilled", "")));
  EXPECT_EQ(v.result.status(), v1::OUT_OF_MEMORY);
}

TEST(ViewPod, DeadlineExceeded) {
  PodView v = ViewPod(Pod(R"({"phase":"Failed","reason":"DeadlineExceeded",
      "message":"Pod was active on the node longer than the specified deadline"})"));
  EXPECT_EQ(v.result.status(), v1::TIMED_OUT);
}

TEST(ViewPod, EvictedIsInfrastructure) {
  PodView v = ViewPod(Pod(R"({"phase":"Failed","reason":"Evicted",
      "message":"The node was low on resource: memory."})"));
  EXPECT_EQ(v.result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(v.result.message(),
            "pod evicted: The node was low on resource: memory.");
  EXPECT_EQ(ViewPod(Pod(R"({"phase":"Unknown"})")).result.status(),
            v1::INFRA_FAILED);
  EXPECT_EQ(
      ViewPod(Pod(R"({"phase":"Failed","reason":"NodeLost"})")).result.status(),
      v1::INFRA_FAILED);
}

TEST(ViewPod, ImagePull) {
  json waiting = {
      {"name", "task"},
      {"image", "reg/x@sha256:1"},
      {"state",
       {{"waiting",
         {{"reason", "ErrImagePull"}, {"message", "manifest unknown"}}}}}};
  // The first failed pull is still pending (the kubelet retries) ...
  PodView first = ViewPod(WithContainers("Pending", json(), waiting));
  EXPECT_EQ(first.stage, Stage::kPending);
  EXPECT_EQ(first.pending_reason, "task: ErrImagePull: manifest unknown");
  // ... back-off means it failed again: an infrastructure failure.
  waiting["state"]["waiting"]["reason"] = "ImagePullBackOff";
  PodView v = ViewPod(WithContainers("Pending", json(), waiting));
  ASSERT_EQ(v.stage, Stage::kFinished);
  EXPECT_EQ(v.result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(v.result.message(),
            "image 'reg/x@sha256:1' of container task cannot be pulled: "
            "ImagePullBackOff: manifest unknown");
}

TEST(ViewPod, TaskTerminatedWithoutResult) {
  PodView v = ViewPod(
      WithContainers("Failed", json(), Terminated("task", 127, "Error", "")));
  EXPECT_EQ(v.result.status(), v1::SETUP_FAILED);
  EXPECT_EQ(v.result.exit_code(), 127);
}

TEST(LatestEventMessage, NewestWins) {
  json events = json::parse(R"({"items":[
      {"reason":"Scheduled","message":"a","lastTimestamp":"2026-01-01T00:00:01Z"},
      {"reason":"FailedScheduling","message":"0/1 nodes: taint",
       "lastTimestamp":"2026-01-01T00:00:05Z"},
      {"reason":"Pulling","message":"b","lastTimestamp":"2026-01-01T00:00:03Z"}]})");
  EXPECT_EQ(LatestEventMessage(events), "FailedScheduling: 0/1 nodes: taint");
  EXPECT_EQ(LatestEventMessage(json::parse(R"({"items":[]})")), "");
}

}  // namespace
}  // namespace kubernetes
}  // namespace kiln
