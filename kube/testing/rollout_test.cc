#include "kube/testing/rollout.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kiln::kube::testing {
namespace {

using nlohmann::json;

json Deployment(const std::string& name, const std::string& image) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", 2},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec",
               {{"containers", {{{"name", "app"}, {"image", image}}}}}}}}}}};
}

// Polls until pred holds on the object at path (10 s at most).
json WaitFor(FakeApiServer* s, const std::string& path,
             const std::function<bool(const json&)>& pred) {
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  json last;
  while (absl::Now() < deadline) {
    auto o = s->GetObject(path);
    if (o.ok()) {
      last = *o;
      if (pred(last)) return last;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ADD_FAILURE() << "timed out; last: " << last.dump();
  return last;
}

std::string ConditionReason(const json& obj, const std::string& type) {
  for (const json& c : obj["status"].value("conditions", json::array())) {
    if (c["type"] == type) return c.value("reason", "");
  }
  return "";
}

TEST(RolloutTest, DeploymentBecomesReadyAndFailingOneCrashLoops) {
  auto server = FakeApiServer::Start();
  ASSERT_TRUE(server.ok());
  auto controller = RolloutController::Start(server->get());
  const std::string deps = "/apis/apps/v1/namespaces/default/deployments";
  ASSERT_TRUE((*server)->CreateObject(deps, Deployment("web", "nginx")).ok());
  json d = WaitFor(server->get(), deps + "/web", [](const json& o) {
    return o["status"].value("availableReplicas", 0) == 2;
  });
  EXPECT_EQ(d["status"]["observedGeneration"], 1);
  EXPECT_EQ(d["status"]["updatedReplicas"], 2);
  EXPECT_EQ(ConditionReason(d, "Progressing"), "NewReplicaSetAvailable");

  ASSERT_TRUE(
      (*server)
          ->CreateObject(deps, Deployment("bad", "x/kiln-test-crashloop"))
          .ok());
  json bad = WaitFor(server->get(), deps + "/bad", [](const json& o) {
    return ConditionReason(o, "Progressing") == "ProgressDeadlineExceeded";
  });
  EXPECT_EQ(bad["status"].value("availableReplicas", -1), 0);
  auto pods = (*server)->ListObjects("/api/v1/namespaces/default/pods");
  ASSERT_TRUE(pods.ok());
  ASSERT_EQ(pods->size(), 1u);
  EXPECT_EQ((*pods)[0]["metadata"]["labels"]["app"], "bad");
  EXPECT_EQ((*pods)[0]["status"]["containerStatuses"][0]["state"]["waiting"]
                   ["reason"],
            "CrashLoopBackOff");
  auto events = (*server)->ListObjects("/api/v1/namespaces/default/events");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0]["reason"], "BackOff");
  EXPECT_EQ((*events)[0]["type"], "Warning");
}

TEST(RolloutTest, JobsCompleteOrFail) {
  auto server = FakeApiServer::Start();
  ASSERT_TRUE(server.ok());
  auto controller = RolloutController::Start(server->get());
  const std::string jobs = "/apis/batch/v1/namespaces/default/jobs";
  json job = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata", {{"name", "migrate"}}},
      {"spec",
       {{"template",
         {{"spec",
           {{"restartPolicy", "Never"},
            {"containers", {{{"name", "m"}, {"image", "busybox"}}}}}}}}}}};
  ASSERT_TRUE((*server)->CreateObject(jobs, job).ok());
  json done = WaitFor(server->get(), jobs + "/migrate", [](const json& o) {
    return o["status"].value("succeeded", 0) == 1;
  });
  EXPECT_EQ(done["status"]["conditions"][0]["type"], "Complete");
  job["metadata"]["name"] = "broken";
  job["metadata"]["annotations"] = {{"kiln.dev/test-rollout", "fail"}};
  ASSERT_TRUE((*server)->CreateObject(jobs, job).ok());
  json failed = WaitFor(server->get(), jobs + "/broken", [](const json& o) {
    return o["status"].contains("conditions");
  });
  EXPECT_EQ(failed["status"]["conditions"][0]["type"], "Failed");
  EXPECT_EQ(failed["status"]["conditions"][0]["reason"],
            "BackoffLimitExceeded");
}

}  // namespace
}  // namespace kiln::kube::testing
