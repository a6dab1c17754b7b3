#include "kube/testing/openapi.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;

const char kMeta[] = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

json Ref(const std::string& name) {
  return {{"$ref", "#/definitions/" + name}};
}
json Str() { return {{"type", "string"}}; }
json Int() { return {{"type", "integer"}, {"format", "int64"}}; }
json Bool() { return {{"type", "boolean"}}; }
// Any value (kube-openapi treats a schema without type and properties as
// arbitrary): the parts of the kinds the double does not describe.
json Anything() { return {{"description", "not described by the double"}}; }
json StrMap() { return {{"type", "object"}, {"additionalProperties", Str()}}; }
json StrList() { return {{"type", "array"}, {"items", Str()}}; }
json ListOf(json item, const std::string& merge_key = "",
            const std::string& strategy = "") {
  json l = {{"type", "array"}, {"items", std::move(item)}};
  if (!merge_key.empty()) l["x-kubernetes-patch-merge-key"] = merge_key;
  if (!strategy.empty()) l["x-kubernetes-patch-strategy"] = strategy;
  return l;
}
json Object(json props, std::vector<std::string> required = {}) {
  json o = {{"type", "object"}, {"properties", std::move(props)}};
  if (!required.empty()) o["required"] = required;
  return o;
}
json Gvk(const std::string& group, const std::string& version,
         const std::string& kind) {
  return json::array(
      {{{"group", group}, {"kind", kind}, {"version", version}}});
}
json TopLevel(const std::string& group, const std::string& version,
              const std::string& kind, json props) {
  props["apiVersion"] = Str();
  props["kind"] = Str();
  props["metadata"] = Ref(kMeta);
  json o = Object(std::move(props));
  o["x-kubernetes-group-version-kind"] = Gvk(group, version, kind);
  return o;
}

json BuildDocument() {
  json defs = json::object();
  defs[kMeta] = Object({
      {"name", Str()},
      {"generateName", Str()},
      {"namespace", Str()},
      {"selfLink", Str()},
      {"uid", Str()},
      {"resourceVersion", Str()},
      {"generation", Int()},
      {"creationTimestamp", Str()},
      {"deletionTimestamp", Str()},
      {"deletionGracePeriodSeconds", Int()},
      {"labels", StrMap()},
      {"annotations", StrMap()},
      {"ownerReferences", ListOf(Anything(), "uid", "merge")},
      {"finalizers", ListOf(Str(), "", "merge")},
      {"managedFields", ListOf(Anything())},
  });
  defs["io.k8s.api.core.v1.EnvVar"] = Object(
      {{"name", Str()}, {"value", Str()}, {"valueFrom", Anything()}}, {"name"});
  json container = Object(
      {
          {"name", Str()},
          {"image", Str()},
          {"command", StrList()},
          {"args", StrList()},
          {"workingDir", Str()},
          {"ports", ListOf(Anything(), "containerPort", "merge")},
          {"envFrom", ListOf(Anything())},
          {"env", ListOf(Ref("io.k8s.api.core.v1.EnvVar"), "name", "merge")},
          {"resources", Anything()},
          {"resizePolicy", ListOf(Anything())},
          {"restartPolicy", Str()},
          {"volumeMounts", ListOf(Anything(), "mountPath", "merge")},
          {"volumeDevices", ListOf(Anything(), "devicePath", "merge")},
          {"livenessProbe", Anything()},
          {"readinessProbe", Anything()},
          {"startupProbe", Anything()},
          {"lifecycle", Anything()},
          {"terminationMessagePath", Str()},
          {"terminationMessagePolicy", Str()},
          {"imagePullPolicy", Str()},
          {"securityContext", Anything()},
          {"stdin", Bool()},
          {"stdinOnce", Bool()},
          {"tty", Bool()},
      },
      {"name"});
  defs["io.k8s.api.core.v1.Container"] = container;
  json containers =
      ListOf(Ref("io.k8s.api.core.v1.Container"), "name", "merge");
  defs["io.k8s.api.core.v1.PodSpec"] = Object(
      {
          {"volumes", ListOf(Anything(), "name", "merge,retainKeys")},
          {"initContainers", containers},
          {"containers", containers},
          {"ephemeralContainers", ListOf(Anything(), "name", "merge")},
          {"restartPolicy", Str()},
          {"terminationGracePeriodSeconds", Int()},
          {"activeDeadlineSeconds", Int()},
          {"dnsPolicy", Str()},
          {"nodeSelector", StrMap()},
          {"serviceAccountName", Str()},
          {"serviceAccount", Str()},
          {"automountServiceAccountToken", Bool()},
          {"nodeName", Str()},
          {"hostNetwork", Bool()},
          {"hostPID", Bool()},
          {"hostIPC", Bool()},
          {"shareProcessNamespace", Bool()},
          {"securityContext", Anything()},
          {"imagePullSecrets", ListOf(Anything(), "name", "merge")},
          {"hostname", Str()},
          {"subdomain", Str()},
          {"affinity", Anything()},
          {"schedulerName", Str()},
          {"tolerations", ListOf(Anything())},
          {"hostAliases", ListOf(Anything(), "ip", "merge")},
          {"priorityClassName", Str()},
          {"priority", Int()},
          {"dnsConfig", Anything()},
          {"readinessGates", ListOf(Anything())},
          {"runtimeClassName", Str()},
          {"enableServiceLinks", Bool()},
          {"preemptionPolicy", Str()},
          {"overhead", Anything()},
          {"topologySpreadConstraints",
           ListOf(Anything(), "topologyKey", "merge")},
          {"setHostnameAsFQDN", Bool()},
          {"os", Anything()},
          {"hostUsers", Bool()},
          {"schedulingGates", ListOf(Anything(), "name", "merge")},
          {"resourceClaims", ListOf(Anything(), "name", "merge,retainKeys")},
          {"resources", Anything()},
      },
      {"containers"});
  defs["io.k8s.api.core.v1.Pod"] = TopLevel(
      "", "v1", "Pod",
      {{"spec", Ref("io.k8s.api.core.v1.PodSpec")}, {"status", Anything()}});
  defs["io.k8s.api.core.v1.Secret"] = TopLevel(
      "", "v1", "Secret",
      {{"data",
        {{"type", "object"},
         {"additionalProperties", {{"type", "string"}, {"format", "byte"}}}}},
       {"stringData", StrMap()},
       {"type", Str()},
       {"immutable", Bool()}});
  defs["io.k8s.api.core.v1.ConfigMap"] = TopLevel(
      "", "v1", "ConfigMap",
      {{"data", StrMap()},
       {"binaryData",
        {{"type", "object"},
         {"additionalProperties", {{"type", "string"}, {"format", "byte"}}}}},
       {"immutable", Bool()}});
  defs["io.k8s.api.core.v1.Namespace"] = TopLevel(
      "", "v1", "Namespace",
      {{"spec", Object({{"finalizers", StrList()}})}, {"status", Anything()}});
  defs["io.k8s.api.core.v1.ServiceAccount"] =
      TopLevel("", "v1", "ServiceAccount",
               {{"secrets", ListOf(Anything(), "name", "merge")},
                {"imagePullSecrets", ListOf(Anything())},
                {"automountServiceAccountToken", Bool()}});
  defs["io.k8s.api.core.v1.Event"] = TopLevel("", "v1", "Event",
                                              {{"involvedObject", Anything()},
                                               {"reason", Str()},
                                               {"message", Str()},
                                               {"source", Anything()},
                                               {"firstTimestamp", Str()},
                                               {"lastTimestamp", Str()},
                                               {"count", Int()},
                                               {"type", Str()},
                                               {"eventTime", Anything()},
                                               {"series", Anything()},
                                               {"action", Str()},
                                               {"related", Anything()},
                                               {"reportingComponent", Str()},
                                               {"reportingInstance", Str()}});
  for (const auto& [group, kind] :
       std::vector<std::pair<std::string, std::string>>{{"apps", "Deployment"},
                                                        {"apps", "ReplicaSet"},
                                                        {"apps", "StatefulSet"},
                                                        {"apps", "DaemonSet"},
                                                        {"batch", "Job"},
                                                        {"batch", "CronJob"}}) {
    std::string pkg = "io.k8s.api." + group + ".v1." + kind;
    defs[pkg] = TopLevel(group, "v1", kind,
                         {{"spec", Anything()}, {"status", Anything()}});
  }
  return {
      {"swagger", "2.0"},
      {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0-kiln-double"}}},
      {"paths", json::object()},
      {"definitions", defs}};
}

// ---- A minimal protobuf writer. ----
class Writer {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Bytes(int field, absl::string_view bytes) {
    Varint(static_cast<uint64_t>(field) << 3 | 2);
    Varint(bytes.size());
    out_.append(bytes.data(), bytes.size());
  }
  void Bool(int field, bool b) {
    Varint(static_cast<uint64_t>(field) << 3 | 0);
    Varint(b ? 1 : 0);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string NamedAny(const std::string& name, const json& value) {
  Writer any;
  any.Bytes(2, value.dump());  // Any.yaml: JSON is YAML
  Writer w;
  w.Bytes(1, name);
  w.Bytes(2, any.Take());
  return w.Take();
}

std::string EncodeSchema(const json& s);

std::string NamedSchema(const std::string& name, const json& schema) {
  Writer w;
  w.Bytes(1, name);
  w.Bytes(2, EncodeSchema(schema));
  return w.Take();
}

// openapi.v2.Schema field numbers.
std::string EncodeSchema(const json& s) {
  Writer w;
  if (s.contains("$ref")) w.Bytes(1, s["$ref"].get<std::string>());
  if (s.contains("format")) w.Bytes(2, s["format"].get<std::string>());
  if (s.contains("description")) {
    w.Bytes(4, s["description"].get<std::string>());
  }
  if (s.contains("required")) {
    for (const json& r : s["required"]) w.Bytes(19, r.get<std::string>());
  }
  if (s.contains("additionalProperties")) {
    Writer ap;
    const json& a = s["additionalProperties"];
    if (a.is_boolean()) {
      ap.Bool(2, a.get<bool>());
    } else {
      ap.Bytes(1, EncodeSchema(a));
    }
    w.Bytes(21, ap.Take());
  }
  if (s.contains("type")) {
    Writer t;
    t.Bytes(1, s["type"].get<std::string>());
    w.Bytes(22, t.Take());
  }
  if (s.contains("items")) {
    Writer it;
    it.Bytes(1, EncodeSchema(s["items"]));
    w.Bytes(23, it.Take());
  }
  if (s.contains("properties")) {
    Writer p;
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
      p.Bytes(1, NamedSchema(it.key(), it.value()));
    }
    w.Bytes(25, p.Take());
  }
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (absl::StartsWith(it.key(), "x-")) {
      w.Bytes(31, NamedAny(it.key(), it.value()));
    }
  }
  return w.Take();
}

}  // namespace

std::string EncodeOpenApiV2(const json& doc) {
  Writer w;
  w.Bytes(1, doc.value("swagger", "2.0"));
  if (doc.contains("info")) {
    Writer info;
    info.Bytes(1, doc["info"].value("title", ""));
    info.Bytes(2, doc["info"].value("version", ""));
    w.Bytes(2, info.Take());
  }
  w.Bytes(8, "");  // paths: none described
  if (doc.contains("definitions")) {
    Writer d;
    for (auto it = doc["definitions"].begin(); it != doc["definitions"].end();
         ++it) {
      d.Bytes(1, NamedSchema(it.key(), it.value()));
    }
    w.Bytes(9, d.Take());
  }
  return w.Take();
}

const json& OpenApiV2Json() {
  static const json* doc = new json(BuildDocument());
  return *doc;
}

const std::string& OpenApiV2Protobuf() {
  static const std::string* pb =
      new std::string(EncodeOpenApiV2(OpenApiV2Json()));
  return *pb;
}

}  // namespace testing
}  // namespace kube
}  // namespace kiln
