// One task: common fields, hints (flattened), artifacts and the kind specs.
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/decode.h"

namespace kiln::pipeline::internal {
namespace {

constexpr const char* kKinds[] = {"run",          "stash",  "unstash",
                                  "containerize", "render", "deploy"};

void DecodeString(Decoder* d, const Fields& f, absl::string_view key,
                  std::string* out) {
  if (const Node* n = f.Get(key)) d->String(*n, f.PathOf(key), out);
}

void DecodeBool(Decoder* d, const Fields& f, absl::string_view key,
                std::function<void(bool)> set) {
  bool value = false;
  if (const Node* n = f.Get(key); n && d->Bool(*n, f.PathOf(key), &value)) {
    set(value);
  }
}

void DecodeList(Decoder* d, const Fields& f, absl::string_view key,
                google::protobuf::RepeatedPtrField<std::string>* out) {
  if (const Node* n = f.Get(key)) d->StringList(*n, f.PathOf(key), out);
}

// `env: {NAME: value}` or `env: [{name: NAME, value: v}]`.
void DecodeEnv(Decoder* d, const Fields& f,
               google::protobuf::RepeatedPtrField<v1::EnvVar>* out) {
  const Node* n = f.Get("env");
  if (n == nullptr) return;
  std::string path = f.PathOf("env");
  if (n->IsSequence()) {
    d->Record(path, *n);
    for (size_t i = 0; i < n->items().size(); ++i) {
      Fields e(d, n->items()[i], Index(path, i), {"name", "value"});
      v1::EnvVar* var = out->Add();
      DecodeString(d, e, "name", var->mutable_name());
      DecodeString(d, e, "value", var->mutable_value());
    }
    return;
  }
  if (!n->IsMapping()) {
    d->Record(path, *n);
    d->Error(*n,
             absl::StrCat(path, ": expected a mapping of NAME: value, got a ",
                          n->KindName()));
    return;
  }
  d->Record(path, *n);
  for (size_t i = 0; i < n->entries().size(); ++i) {
    const auto& [key, value] = n->entries()[i];
    v1::EnvVar* var = out->Add();
    std::string item = Index(path, i);
    d->Record(item, key);
    d->String(key, Field(item, "name"), var->mutable_name());
    d->String(value, Field(item, "value"), var->mutable_value());
  }
}

// `labels: {key: value}`.
void DecodeLabels(Decoder* d, const Fields& f,
                  google::protobuf::RepeatedPtrField<v1::Label>* out) {
  const Node* n = f.Get("labels");
  if (n == nullptr) return;
  std::string path = f.PathOf("labels");
  if (!d->ExpectMapping(*n, path)) return;
  for (size_t i = 0; i < n->entries().size(); ++i) {
    const auto& [key, value] = n->entries()[i];
    v1::Label* label = out->Add();
    std::string item = Index(path, i);
    d->Record(item, key);
    d->String(key, Field(item, "key"), label->mutable_key());
    d->String(value, Field(item, "value"), label->mutable_value());
  }
}

void DecodeRun(Decoder* d, const Node& node, const std::string& path,
               v1::RunSpec* out) {
  static const auto* roles =
      new EnumNames{{"compile", v1::COMPILE}, {"test", v1::TEST}};
  Fields f(d, node, path,
           {"role", "image", "command", "env", "workdir", "network", "report"});
  if (const Node* n = f.Get("role")) {
    int role = 0;
    if (d->Enum(*n, f.PathOf("role"), *roles, "role", &role)) {
      out->set_role(static_cast<v1::Role>(role));
    }
  }
  DecodeString(d, f, "image", out->mutable_image());
  DecodeList(d, f, "command", out->mutable_command());
  DecodeEnv(d, f, out->mutable_env());
  DecodeString(d, f, "workdir", out->mutable_workdir());
  DecodeBool(d, f, "network", [out](bool v) { out->set_network(v); });
  DecodeString(d, f, "report", out->mutable_report());
}

void DecodeStash(Decoder* d, const Node& node, const std::string& path,
                 v1::StashSpec* out) {
  Fields f(d, node, path, {"artifact", "from", "exclude"});
  DecodeString(d, f, "artifact", out->mutable_artifact());
  DecodeString(d, f, "from", out->mutable_from());
  DecodeList(d, f, "exclude", out->mutable_exclude());
}

void DecodeUnstash(Decoder* d, const Node& node, const std::string& path,
                   v1::UnstashSpec* out) {
  Fields f(d, node, path, {"artifact", "to"});
  DecodeString(d, f, "artifact", out->mutable_artifact());
  DecodeString(d, f, "to", out->mutable_to());
}

void DecodeContainerize(Decoder* d, const Node& node, const std::string& path,
                        v1::ContainerizeSpec* out) {
  Fields f(d, node, path,
           {"base", "layers", "entrypoint", "cmd", "env", "labels", "workdir",
            "user", "push", "artifact", "platform"});
  DecodeString(d, f, "base", out->mutable_base());
  if (const Node* n = f.Get("layers");
      n && d->ExpectSequence(*n, f.PathOf("layers"))) {
    for (size_t i = 0; i < n->items().size(); ++i) {
      Fields l(d, n->items()[i], Index(f.PathOf("layers"), i),
               {"artifact", "to"});
      v1::ImageLayer* layer = out->add_layers();
      DecodeString(d, l, "artifact", layer->mutable_artifact());
      DecodeString(d, l, "to", layer->mutable_to());
    }
  }
  DecodeList(d, f, "entrypoint", out->mutable_entrypoint());
  DecodeList(d, f, "cmd", out->mutable_cmd());
  DecodeEnv(d, f, out->mutable_env());
  DecodeLabels(d, f, out->mutable_labels());
  DecodeString(d, f, "workdir", out->mutable_workdir());
  DecodeString(d, f, "user", out->mutable_user());
  DecodeString(d, f, "push", out->mutable_push());
  DecodeString(d, f, "artifact", out->mutable_artifact());
  DecodeString(d, f, "platform", out->mutable_platform());
}

void DecodeRender(Decoder* d, const Node& node, const std::string& path,
                  v1::RenderSpec* out) {
  Fields f(d, node, path,
           {"kustomization", "namespace", "images", "labels", "name_prefix",
            "name_suffix", "artifact"});
  if (const Node* n = f.Get("kustomization")) {
    std::string kpath = f.PathOf("kustomization");
    if (n->IsScalar()) {  // a directory in the source artifact
      out->mutable_kustomization()->set_artifact("source");
      d->String(*n, Field(kpath, "path"),
                out->mutable_kustomization()->mutable_path());
      d->Record(kpath, *n);
    } else {
      Fields k(d, *n, kpath, {"artifact", "path"});
      DecodeString(d, k, "artifact",
                   out->mutable_kustomization()->mutable_artifact());
      DecodeString(d, k, "path", out->mutable_kustomization()->mutable_path());
    }
  }
  DecodeString(d, f, "namespace", out->mutable_namespace_());
  if (const Node* n = f.Get("images");
      n && d->ExpectSequence(*n, f.PathOf("images"))) {
    for (size_t i = 0; i < n->items().size(); ++i) {
      Fields im(d, n->items()[i], Index(f.PathOf("images"), i),
                {"name", "new_name", "new_tag", "digest"});
      v1::ImageOverride* o = out->add_images();
      DecodeString(d, im, "name", o->mutable_name());
      DecodeString(d, im, "new_name", o->mutable_new_name());
      DecodeString(d, im, "new_tag", o->mutable_new_tag());
      DecodeString(d, im, "digest", o->mutable_digest());
    }
  }
  DecodeLabels(d, f, out->mutable_labels());
  DecodeString(d, f, "name_prefix", out->mutable_name_prefix());
  DecodeString(d, f, "name_suffix", out->mutable_name_suffix());
  DecodeString(d, f, "artifact", out->mutable_artifact());
}

void DecodeDeploy(Decoder* d, const Node& node, const std::string& path,
                  v1::DeploySpec* out) {
  static const auto* kinds =
      new EnumNames{{"preview", v1::PREVIEW}, {"permanent", v1::PERMANENT}};
  Fields f(d, node, path,
           {"environment", "kind", "manifests", "overlay", "namespace",
            "context", "wait"});
  DecodeString(d, f, "environment", out->mutable_environment());
  if (const Node* n = f.Get("kind")) {
    int kind = 0;
    if (d->Enum(*n, f.PathOf("kind"), *kinds, "environment kind", &kind)) {
      out->set_kind(static_cast<v1::EnvironmentKind>(kind));
    }
  }
  DecodeString(d, f, "manifests", out->mutable_manifests());
  DecodeString(d, f, "overlay", out->mutable_overlay());
  DecodeString(d, f, "namespace", out->mutable_namespace_());
  DecodeString(d, f, "context", out->mutable_context());
  DecodeBool(d, f, "wait", [out](bool v) { out->set_wait(v); });
}

void DecodeInputs(Decoder* d, const Node& node, const std::string& path,
                  v1::Task* out) {
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    const Node& item = node.items()[i];
    v1::ArtifactInput* input = out->add_inputs();
    if (item.IsScalar()) {  // shorthand: the artifact's name
      d->String(item, Field(Index(path, i), "artifact"),
                input->mutable_artifact());
      d->Record(Index(path, i), item);
      continue;
    }
    Fields f(d, item, Index(path, i), {"artifact", "path"});
    DecodeString(d, f, "artifact", input->mutable_artifact());
    DecodeString(d, f, "path", input->mutable_path());
  }
}

void DecodeOutputs(Decoder* d, const Node& node, const std::string& path,
                   v1::Task* out) {
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    Fields f(d, node.items()[i], Index(path, i), {"artifact", "paths"});
    v1::ArtifactOutput* output = out->add_outputs();
    DecodeString(d, f, "artifact", output->mutable_artifact());
    DecodeList(d, f, "paths", output->mutable_paths());
  }
}

void DecodeResources(Decoder* d, const Node& node, const std::string& path,
                     v1::Resources* out) {
  Fields f(d, node, path, {"memory", "max_pids", "max_log_bytes"});
  uint64_t value = 0;
  if (const Node* n = f.Get("memory");
      n && d->ByteSize(*n, f.PathOf("memory"), &value)) {
    out->set_memory_bytes(value);
  }
  if (const Node* n = f.Get("max_pids");
      n && d->Uint(*n, f.PathOf("max_pids"),
                   std::numeric_limits<uint32_t>::max(), &value)) {
    out->set_max_pids(static_cast<uint32_t>(value));
  }
  if (const Node* n = f.Get("max_log_bytes");
      n && d->ByteSize(*n, f.PathOf("max_log_bytes"), &value)) {
    out->set_max_log_bytes(value);
  }
}

}  // namespace

void DecodeTask(Decoder* d, const Node& node, const std::string& path,
                v1::Task* out) {
  std::vector<std::string> allowed = {
      "name",      "needs",  "when",    "retries", "timeout",
      "resources", "inputs", "outputs", "cache",   "run_if_needs_skipped",
      "executor"};
  for (const char* k : kKinds) allowed.push_back(k);
  Fields f(d, node, path, allowed);
  if (!f.ok()) return;
  DecodeString(d, f, "name", out->mutable_name());
  DecodeString(d, f, "executor", out->mutable_executor());
  DecodeList(d, f, "needs", out->mutable_needs());
  if (const Node* n = f.Get("when")) {
    DecodeCondition(d, *n, f.PathOf("when"), out->mutable_when());
  }
  uint64_t retries = 0;
  if (const Node* n = f.Get("retries");
      n && d->Uint(*n, f.PathOf("retries"), 100, &retries)) {
    d->Record(Field(path, "hints.retries"), *n);
    out->mutable_hints()->set_retries(static_cast<uint32_t>(retries));
  }
  if (const Node* n = f.Get("timeout")) {
    d->Record(Field(path, "hints.timeout"), *n);
    d->Duration(*n, f.PathOf("timeout"),
                out->mutable_hints()->mutable_timeout());
  }
  if (const Node* n = f.Get("resources")) {
    d->Record(Field(path, "hints.resources"), *n);
    DecodeResources(d, *n, f.PathOf("resources"),
                    out->mutable_hints()->mutable_resources());
  }
  if (const Node* n = f.Get("inputs"))
    DecodeInputs(d, *n, f.PathOf("inputs"), out);
  if (const Node* n = f.Get("outputs"))
    DecodeOutputs(d, *n, f.PathOf("outputs"), out);
  DecodeBool(d, f, "cache", [out](bool v) { out->set_cache(v); });
  DecodeBool(d, f, "run_if_needs_skipped",
             [out](bool v) { out->set_run_if_needs_skipped(v); });

  // Exactly one kind; a second one is reported here because the proto's
  // oneof would silently keep only the last.
  std::vector<std::string> present;
  for (const char* kind : kKinds) {
    const Node* n = f.Get(kind);
    if (n == nullptr) continue;
    present.push_back(kind);
    if (present.size() > 1) {
      d->Error(
          *n, absl::StrCat(path, ": a task has exactly one kind, but '",
                           present.front(), "' and '", kind, "' are both set"));
      continue;
    }
    std::string kpath = f.PathOf(kind);
    absl::string_view k = kind;
    if (k == "run") DecodeRun(d, *n, kpath, out->mutable_run());
    if (k == "stash") DecodeStash(d, *n, kpath, out->mutable_stash());
    if (k == "unstash") DecodeUnstash(d, *n, kpath, out->mutable_unstash());
    if (k == "containerize") {
      DecodeContainerize(d, *n, kpath, out->mutable_containerize());
    }
    if (k == "render") DecodeRender(d, *n, kpath, out->mutable_render());
    if (k == "deploy") DecodeDeploy(d, *n, kpath, out->mutable_deploy());
  }
}

}  // namespace kiln::pipeline::internal
