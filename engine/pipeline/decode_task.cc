// One task: common fields, hints (flattened), artifacts and the kind specs.
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/decode.h"
#include "engine/pipeline/kind_spec.h"

namespace kiln::pipeline::internal {
namespace {

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

void DecodeApproval(Decoder* d, const Node& node, const std::string& path,
                    v1::Approval* out) {
  Fields f(d, node, path, {"message", "approvers", "timeout"});
  if (!f.ok()) return;
  DecodeString(d, f, "message", out->mutable_message());
  DecodeList(d, f, "approvers", out->mutable_approvers());
  if (const Node* n = f.Get("timeout")) {
    d->Duration(*n, f.PathOf("timeout"), out->mutable_timeout());
  }
}

}  // namespace

void DecodeTask(Decoder* d, const Node& node, const std::string& path,
                v1::Task* out) {
  std::vector<std::string> allowed = {
      "name",      "needs",  "when",    "retries", "timeout",
      "resources", "inputs", "outputs", "cache",   "run_if_needs_skipped",
      "executor",  "pod",    "approval"};
  for (const KindSpec* k : RegisteredKinds()) allowed.push_back(k->name());
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
  if (const Node* n = f.Get("pod")) {
    d->Record(Field(path, "hints.pod"), *n);
    DecodePodShape(d, *n, f.PathOf("pod"), out->mutable_hints()->mutable_pod());
  }
  if (const Node* n = f.Get("approval")) {
    // `approval: {}` (every default) still makes the task a gate.
    if (d->ExpectMapping(*n, f.PathOf("approval"))) {
      DecodeApproval(d, *n, f.PathOf("approval"), out->mutable_approval());
    }
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
  for (const KindSpec* kind : RegisteredKinds()) {
    const Node* n = f.Get(kind->name());
    if (n == nullptr) continue;
    present.push_back(kind->name());
    if (present.size() > 1) {
      d->Error(*n, absl::StrCat(path, ": a task has exactly one kind, but '",
                                present.front(), "' and '", kind->name(),
                                "' are both set"));
      continue;
    }
    kind->Decode(d, *n, f.PathOf(kind->name()), out);
  }
}

}  // namespace kiln::pipeline::internal
