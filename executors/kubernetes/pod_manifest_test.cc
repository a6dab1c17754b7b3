#include "executors/kubernetes/pod_manifest.h"

#include <functional>

#include "gtest/gtest.h"

namespace kiln {
namespace kubernetes {
namespace {

using json = nlohmann::json;

v1::ExecRequest Request() {
  v1::ExecRequest r;
  r.set_run_id("r1");
  r.set_task("build");
  r.set_attempt(2);
  r.add_argv("sh");
  r.add_argv("-c");
  r.add_argv("echo hi > out/x");
  (*r.mutable_env())["B"] = "2";
  (*r.mutable_env())["A"] = "1";
  r.set_workdir("src");
  r.set_image("registry.test/busybox@sha256:abc");
  auto* in = r.add_inputs();
  in->set_artifact("sources");
  in->set_digest("sha256:tree1");
  in->set_path("src");
  auto* out = r.add_outputs();
  out->set_artifact("bin");
  out->add_paths("src/out");
  r.set_report("src/report.xml");
  r.mutable_limits()->set_memory_bytes(1 << 20);
  return r;
}

PodManifestParams Params() {
  PodManifestParams p;
  p.name = "kiln-r1-build-2";
  p.namespace_name = "ci";
  p.agent_image = "registry.test/kiln-agent@sha256:def";
  p.agent_server = "127.0.0.1:4000";
  p.token_secret = "kiln-agent-kubernetes";
  p.agent_spec = "{}";
  p.timeout = absl::Seconds(30);
  return p;
}

TEST(BuildAgentSpec, CarriesInputsOutputsReportWorkdirTimeout) {
  json spec = json::parse(
      BuildAgentSpec(Request(), {"sha256:arch1"}, absl::Seconds(30)));
  EXPECT_EQ(spec, json::parse(R"({"v":1,
    "inputs":[{"artifact":"sources","tree":"sha256:tree1",
               "archive":"sha256:arch1","path":"src"}],
    "outputs":[{"artifact":"bin","paths":["src/out"]}],
    "report":"src/report.xml","workdir":"src","timeout_ms":30000})"));
}

TEST(BuildPodManifest, FieldByField) {
  json pod = BuildPodManifest(Request(), Params());
  EXPECT_EQ(pod["apiVersion"], "v1");
  EXPECT_EQ(pod["kind"], "Pod");
  EXPECT_EQ(pod["metadata"]["name"], "kiln-r1-build-2");
  EXPECT_EQ(pod["metadata"]["namespace"], "ci");
  EXPECT_EQ(pod["metadata"]["labels"], json::parse(R"({
      "kiln.dev/run":"r1","kiln.dev/task":"build","kiln.dev/attempt":"2",
      "app.kubernetes.io/managed-by":"kiln"})"));
  EXPECT_EQ(pod["metadata"]["annotations"],
            json({{"kiln.dev/run-id", "r1"},
                  {"kiln.dev/task-name", "build"},
                  {"kiln.dev/request", RequestFingerprint(Request())}}));

  const json& spec = pod["spec"];
  EXPECT_EQ(spec["restartPolicy"], "Never");
  EXPECT_EQ(spec["automountServiceAccountToken"], false);
  EXPECT_FALSE(spec.contains("serviceAccountName"));
  EXPECT_EQ(spec["activeDeadlineSeconds"], 90);  // 30 s + 60 s slack
  EXPECT_EQ(spec["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault");
  EXPECT_EQ(spec["volumes"], json::parse(R"([
      {"name":"kiln","emptyDir":{}},{"name":"workspace","emptyDir":{}}])"));
  for (const char* absent : {"nodeSelector", "tolerations", "affinity",
                             "imagePullSecrets", "runtimeClassName"}) {
    EXPECT_FALSE(spec.contains(absent)) << absent;
  }

  ASSERT_EQ(spec["initContainers"].size(), 1u);
  const json& fetch = spec["initContainers"][0];
  EXPECT_EQ(fetch["name"], "kiln-fetch");
  EXPECT_EQ(fetch["image"], "registry.test/kiln-agent@sha256:def");
  EXPECT_EQ(fetch["command"], json::parse(R"([
      "/kiln/agent/lib/ld-linux-x86-64.so.2","--library-path",
      "/kiln/agent/lib","/kiln/agent/bin/kiln-agent","fetch"])"));
  EXPECT_EQ(fetch["volumeMounts"], json::parse(R"([
      {"name":"kiln","mountPath":"/kiln-out"},
      {"name":"workspace","mountPath":"/workspace"}])"));
  EXPECT_EQ(fetch["terminationMessagePath"], "/kiln-out/fetch.json");
  EXPECT_EQ(fetch["env"], json::parse(R"([
      {"name":"KILN_AGENT_SPEC","value":"{}"},
      {"name":"KILN_AGENT_SERVER","value":"127.0.0.1:4000"},
      {"name":"KILN_AGENT_TOKEN","valueFrom":{"secretKeyRef":
          {"name":"kiln-agent-kubernetes","key":"token"}}}])"));
  EXPECT_EQ(fetch["securityContext"], json::parse(R"({
      "allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}})"));

  ASSERT_EQ(spec["containers"].size(), 1u);
  const json& task = spec["containers"][0];
  EXPECT_EQ(task["name"], "task");
  EXPECT_EQ(task["image"], "registry.test/busybox@sha256:abc");
  EXPECT_EQ(task["command"], json::parse(R"([
      "/kiln/agent/lib/ld-linux-x86-64.so.2","--library-path",
      "/kiln/agent/lib","/kiln/agent/bin/kiln-agent","run","--",
      "sh","-c","echo hi > out/x"])"));
  EXPECT_EQ(task["workingDir"], "/workspace/src");
  EXPECT_EQ(task["volumeMounts"], json::parse(R"([
      {"name":"kiln","mountPath":"/kiln"},
      {"name":"workspace","mountPath":"/workspace"}])"));
  EXPECT_EQ(task["terminationMessagePath"], "/kiln/result.json");
  EXPECT_EQ(task["terminationMessagePolicy"], "File");
  // The task's env (sorted), then the agent's.
  ASSERT_EQ(task["env"].size(), 5u);
  EXPECT_EQ(task["env"][0], json::parse(R"({"name":"A","value":"1"})"));
  EXPECT_EQ(task["env"][1], json::parse(R"({"name":"B","value":"2"})"));
  EXPECT_EQ(task["env"][2]["name"], "KILN_AGENT_SPEC");
  EXPECT_EQ(task["env"][4]["name"], "KILN_AGENT_TOKEN");
  EXPECT_EQ(task["resources"],
            json::parse(R"({"limits":{"memory":"1048576"}})"));
}

TEST(BuildPodManifest, ShapeAndCa) {
  PodManifestParams p = Params();
  p.agent_ca_pem = "-----BEGIN CERTIFICATE-----";
  v1::PodShape& s = p.shape;
  (*s.mutable_node_selector())["kubernetes.io/arch"] = "arm64";
  auto* t = s.add_tolerations();
  t->set_key("dedicated");
  t->set_value("ci");
  t->set_effect("NoExecute");
  t->set_toleration_seconds(30);
  auto* t2 = s.add_tolerations();
  t2->set_operator_("Exists");
  s.set_affinity_json(R"({"nodeAffinity":{"x":1}})");
  s.set_service_account("builder");
  s.add_image_pull_secrets("regcred");
  (*s.mutable_labels())["team"] = "a";
  (*s.mutable_labels())["kiln.dev/run"] = "forged";
  (*s.mutable_annotations())["note"] = "x y";
  (*s.mutable_requests())["cpu"] = "500m";
  (*s.mutable_limits())["memory"] = "2Gi";
  s.set_runtime_class("gvisor");
  json pod = BuildPodManifest(Request(), p);
  const json& spec = pod["spec"];
  EXPECT_EQ(spec["nodeSelector"],
            json::parse(R"({"kubernetes.io/arch":"arm64"})"));
  EXPECT_EQ(spec["tolerations"], json::parse(R"([
      {"key":"dedicated","operator":"Equal","value":"ci","effect":"NoExecute",
       "tolerationSeconds":30},{"operator":"Exists"}])"));
  EXPECT_EQ(spec["affinity"], json::parse(R"({"nodeAffinity":{"x":1}})"));
  EXPECT_EQ(spec["serviceAccountName"], "builder");
  EXPECT_EQ(spec["automountServiceAccountToken"], true);
  EXPECT_EQ(spec["imagePullSecrets"], json::parse(R"([{"name":"regcred"}])"));
  EXPECT_EQ(spec["runtimeClassName"], "gvisor");
  EXPECT_EQ(pod["metadata"]["labels"]["team"], "a");
  EXPECT_EQ(pod["metadata"]["labels"]["kiln.dev/run"], "r1");  // kiln's wins
  EXPECT_EQ(pod["metadata"]["annotations"]["note"], "x y");
  // The shape's memory limit wins over the task's memory_bytes.
  EXPECT_EQ(spec["containers"][0]["resources"], json::parse(R"({
      "requests":{"cpu":"500m"},"limits":{"memory":"2Gi"}})"));
  EXPECT_EQ(spec["initContainers"][0]["env"][3], json::parse(R"({
      "name":"KILN_AGENT_CA","value":"-----BEGIN CERTIFICATE-----"})"));
}

TEST(RequestFingerprint, WhatTheAttemptComputes) {
  v1::ExecRequest a = Request();
  std::string f = RequestFingerprint(a);
  EXPECT_EQ(f.substr(0, 7), "sha256:");
  EXPECT_EQ(f.size(), 7u + 64u);
  // Identity of the attempt is not in it: a later attempt matches.
  // The engine sets KILN_ATTEMPT per attempt: a later attempt (after an
  // engine restart) still matches.
  (*a.mutable_env())["KILN_ATTEMPT"] = "1";
  f = RequestFingerprint(a);
  v1::ExecRequest later = a;
  later.set_attempt(7);
  (*later.mutable_env())["KILN_ATTEMPT"] = "7";
  EXPECT_EQ(RequestFingerprint(later), f);
  // Anything the command computes from is.
  std::vector<std::function<void(v1::ExecRequest*)>> edits = {
      [](v1::ExecRequest* r) { r->set_argv(0, "bash"); },
      [](v1::ExecRequest* r) { (*r->mutable_env())["A"] = "x"; },
      [](v1::ExecRequest* r) { r->set_image("other@sha256:1"); },
      [](v1::ExecRequest* r) { r->set_workdir(""); },
      [](v1::ExecRequest* r) { r->mutable_inputs(0)->set_digest("sha256:t2"); },
      [](v1::ExecRequest* r) { r->mutable_outputs(0)->add_paths("more"); },
      [](v1::ExecRequest* r) { r->set_network(true); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    v1::ExecRequest b = a;
    edits[i](&b);
    EXPECT_NE(RequestFingerprint(b), f) << i;
  }
}

TEST(BuildTokenSecret, Base64Token) {
  json s = BuildTokenSecret("kiln-agent-k", "ci", "t0k");
  EXPECT_EQ(s["data"]["token"], "dDBr");
  EXPECT_EQ(s["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kiln");
}

}  // namespace
}  // namespace kubernetes
}  // namespace kiln
