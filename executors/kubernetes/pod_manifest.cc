#include "executors/kubernetes/pod_manifest.h"

#include <openssl/sha.h>

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "executors/kubernetes/pod_names.h"

namespace kiln {
namespace kubernetes {
namespace {

using json = nlohmann::json;

json AgentCommand(const char* verb, const std::vector<std::string>& argv) {
  json cmd = json::array(
      {kAgentLoader, "--library-path", kAgentLibs, kAgentBinary, verb});
  if (std::string(verb) == "run") {
    cmd.push_back("--");
    for (const auto& a : argv) cmd.push_back(a);
  }
  return cmd;
}

json AgentEnv(const PodManifestParams& p) {
  json env = json::array();
  env.push_back({{"name", "KILN_AGENT_SPEC"}, {"value", p.agent_spec}});
  env.push_back({{"name", "KILN_AGENT_SERVER"}, {"value", p.agent_server}});
  env.push_back(
      {{"name", "KILN_AGENT_TOKEN"},
       {"valueFrom",
        {{"secretKeyRef", {{"name", p.token_secret}, {"key", "token"}}}}}});
  if (!p.agent_ca_pem.empty()) {
    env.push_back({{"name", "KILN_AGENT_CA"}, {"value", p.agent_ca_pem}});
  }
  return env;
}

json RestrictiveSecurityContext() {
  return {{"allowPrivilegeEscalation", false},
          {"capabilities", {{"drop", json::array({"ALL"})}}}};
}

json Resources(const v1::ExecRequest& request, const v1::PodShape& shape) {
  json requests = json::object();
  json limits = json::object();
  for (const auto& [k, v] : shape.requests()) requests[k] = v;
  for (const auto& [k, v] : shape.limits()) limits[k] = v;
  // The task's memory limit (hints.resources.memory_bytes) is the
  // container's unless the pod shape names one.
  if (request.limits().memory_bytes() > 0 && !limits.contains("memory")) {
    limits["memory"] = absl::StrCat(request.limits().memory_bytes());
  }
  json out = json::object();
  if (!requests.empty()) out["requests"] = requests;
  if (!limits.empty()) out["limits"] = limits;
  return out;
}

json StringMap(const std::map<std::string, std::string>& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = v;
  return out;
}

}  // namespace

std::string RequestFingerprint(const v1::ExecRequest& request) {
  json j = json::object();
  j["argv"] =
      std::vector<std::string>(request.argv().begin(), request.argv().end());
  // KILN_ATTEMPT is the one variable that differs between attempts of the
  // same work: a restarted engine's next attempt must still match (and
  // adopt) the pod its predecessor started.
  std::map<std::string, std::string> env(request.env().begin(),
                                         request.env().end());
  env.erase("KILN_ATTEMPT");
  j["env"] = env;
  j["image"] = request.image();
  j["workdir"] = request.workdir();
  j["network"] = request.network();
  j["report"] = request.report();
  j["timeout_ms"] = request.limits().timeout().seconds() * 1000 +
                    request.limits().timeout().nanos() / 1000000;
  json inputs = json::array();
  for (const auto& in : request.inputs())
    inputs.push_back({in.artifact(), in.digest(), in.path()});
  j["inputs"] = inputs;
  json outputs = json::array();
  for (const auto& out : request.outputs()) {
    outputs.push_back(
        {out.artifact(),
         std::vector<std::string>(out.paths().begin(), out.paths().end())});
  }
  j["outputs"] = outputs;
  std::string text = j.dump();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(),
         digest);
  return absl::StrCat(
      "sha256:", absl::BytesToHexString(absl::string_view(
                     reinterpret_cast<const char*>(digest), sizeof(digest))));
}

std::string BuildAgentSpec(const v1::ExecRequest& request,
                           const std::vector<std::string>& input_archives,
                           absl::Duration timeout) {
  json spec = {{"v", 1}};
  json inputs = json::array();
  for (int i = 0; i < request.inputs_size(); ++i) {
    const v1::ExecInput& in = request.inputs(i);
    inputs.push_back({{"artifact", in.artifact()},
                      {"tree", in.digest()},
                      {"archive", i < static_cast<int>(input_archives.size())
                                      ? input_archives[i]
                                      : std::string()},
                      {"path", in.path()}});
  }
  spec["inputs"] = inputs;
  json outputs = json::array();
  for (const v1::ExecOutput& out : request.outputs()) {
    json paths = json::array();
    for (const auto& p : out.paths()) paths.push_back(p);
    outputs.push_back({{"artifact", out.artifact()}, {"paths", paths}});
  }
  spec["outputs"] = outputs;
  spec["report"] = request.report();
  spec["workdir"] = request.workdir();
  spec["timeout_ms"] = absl::ToInt64Milliseconds(timeout);
  return spec.dump();
}

json BuildPodManifest(const v1::ExecRequest& request,
                      const PodManifestParams& p) {
  const v1::PodShape& shape = p.shape;
  std::map<std::string, std::string> labels(shape.labels().begin(),
                                            shape.labels().end());
  for (const auto& [k, v] :
       PodLabels(request.run_id(), request.task(), request.attempt())) {
    labels[k] = v;  // kiln's own labels win (the loader refuses them too)
  }
  if (!p.instance.empty()) labels[kLabelInstance] = p.instance;
  std::map<std::string, std::string> annotations(shape.annotations().begin(),
                                                 shape.annotations().end());
  for (const auto& [k, v] : PodAnnotations(request.run_id(), request.task())) {
    annotations[k] = v;
  }
  annotations[kAnnotationRequest] = RequestFingerprint(request);

  json volume_mounts_fetch =
      json::array({{{"name", "kiln"}, {"mountPath", "/kiln-out"}},
                   {{"name", "workspace"}, {"mountPath", "/workspace"}}});
  json volume_mounts_task =
      json::array({{{"name", "kiln"}, {"mountPath", "/kiln"}},
                   {{"name", "workspace"}, {"mountPath", "/workspace"}}});

  json fetch = {{"name", kFetchContainer},
                {"image", p.agent_image},
                {"imagePullPolicy", "IfNotPresent"},
                {"command", AgentCommand("fetch", {})},
                {"env", AgentEnv(p)},
                {"volumeMounts", volume_mounts_fetch},
                {"terminationMessagePath", kFetchMessagePath},
                {"terminationMessagePolicy", "File"},
                {"securityContext", RestrictiveSecurityContext()}};

  json task_env = json::array();
  for (const auto& [k, v] : std::map<std::string, std::string>(
           request.env().begin(), request.env().end())) {
    task_env.push_back({{"name", k}, {"value", v}});
  }
  for (const auto& e : AgentEnv(p)) task_env.push_back(e);
  std::vector<std::string> argv(request.argv().begin(), request.argv().end());
  std::string workdir = "/workspace";
  if (!request.workdir().empty())
    absl::StrAppend(&workdir, "/", request.workdir());
  json task = {{"name", kTaskContainer},
               {"image", request.image()},
               {"imagePullPolicy", "IfNotPresent"},
               {"command", AgentCommand("run", argv)},
               {"workingDir", workdir},
               {"env", task_env},
               {"volumeMounts", volume_mounts_task},
               {"terminationMessagePath", kResultMessagePath},
               {"terminationMessagePolicy", "File"},
               {"securityContext", RestrictiveSecurityContext()}};
  json resources = Resources(request, shape);
  if (!resources.empty()) task["resources"] = resources;

  int64_t deadline = static_cast<int64_t>(
      std::ceil(absl::ToDoubleSeconds(p.timeout + kDeadlineSlack)));
  json spec = {
      {"restartPolicy", "Never"},
      {"automountServiceAccountToken", !shape.service_account().empty()},
      {"activeDeadlineSeconds", deadline},
      {"enableServiceLinks", false},
      {"securityContext", {{"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"volumes",
       json::array({{{"name", "kiln"}, {"emptyDir", json::object()}},
                    {{"name", "workspace"}, {"emptyDir", json::object()}}})},
      {"initContainers", json::array({fetch})},
      {"containers", json::array({task})}};
  if (!shape.service_account().empty()) {
    spec["serviceAccountName"] = shape.service_account();
  }
  if (!shape.node_selector().empty()) {
    spec["nodeSelector"] = StringMap(std::map<std::string, std::string>(
        shape.node_selector().begin(), shape.node_selector().end()));
  }
  if (shape.tolerations_size() > 0) {
    json tolerations = json::array();
    for (const auto& t : shape.tolerations()) {
      json j = json::object();
      if (!t.key().empty()) j["key"] = t.key();
      j["operator"] = t.operator_().empty() ? "Equal" : t.operator_();
      if (!t.value().empty()) j["value"] = t.value();
      if (!t.effect().empty()) j["effect"] = t.effect();
      if (t.has_toleration_seconds())
        j["tolerationSeconds"] = t.toleration_seconds();
      tolerations.push_back(j);
    }
    spec["tolerations"] = tolerations;
  }
  if (!shape.affinity_json().empty()) {
    spec["affinity"] = json::parse(shape.affinity_json(), nullptr, false);
  }
  if (shape.image_pull_secrets_size() > 0) {
    json secrets = json::array();
    for (const auto& s : shape.image_pull_secrets())
      secrets.push_back({{"name", s}});
    spec["imagePullSecrets"] = secrets;
  }
  if (!shape.runtime_class().empty()) {
    spec["runtimeClassName"] = shape.runtime_class();
  }
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", p.name},
            {"namespace", p.namespace_name},
            {"labels", StringMap(labels)},
            {"annotations", StringMap(annotations)}}},
          {"spec", spec}};
}

json BuildTokenSecret(const std::string& name,
                      const std::string& namespace_name,
                      const std::string& token) {
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata",
           {{"name", name},
            {"namespace", namespace_name},
            {"labels", {{kLabelManagedBy, "kiln"}}}}},
          {"type", "Opaque"},
          {"data", {{"token", absl::Base64Escape(token)}}}};
}

}  // namespace kubernetes
}  // namespace kiln
