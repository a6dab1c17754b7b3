// Top level of the pipeline file: name, params, options, environments,
// tasks, finally, notify.
#include <limits>

#include "engine/pipeline/decode.h"

namespace kiln::pipeline::internal {
namespace {

const EnumNames& ParamTypes() {
  static const auto* names = new EnumNames{{"string", v1::STRING},
                                           {"bool", v1::BOOL},
                                           {"int", v1::INT},
                                           {"choice", v1::CHOICE}};
  return *names;
}

const EnumNames& FailurePolicies() {
  static const auto* names =
      new EnumNames{{"fail_fast", v1::FAIL_FAST}, {"continue", v1::CONTINUE}};
  return *names;
}

void DecodeParam(Decoder* d, const Node& node, const std::string& path,
                 v1::Param* out) {
  Fields f(d, node, path,
           {"name", "type", "default", "description", "choices", "secret"});
  if (const Node* n = f.Get("name"))
    d->String(*n, f.PathOf("name"), out->mutable_name());
  if (const Node* n = f.Get("type")) {
    int type = 0;
    if (d->Enum(*n, f.PathOf("type"), ParamTypes(), "param type", &type)) {
      out->set_type(static_cast<v1::ParamType>(type));
    }
  }
  if (const Node* n = f.Get("default")) {
    std::string value;
    if (d->String(*n, f.PathOf("default"), &value)) out->set_default_(value);
  }
  if (const Node* n = f.Get("description")) {
    d->String(*n, f.PathOf("description"), out->mutable_description());
  }
  if (const Node* n = f.Get("choices")) {
    d->StringList(*n, f.PathOf("choices"), out->mutable_choices());
  }
  if (const Node* n = f.Get("secret")) {
    bool secret = false;
    if (d->Bool(*n, f.PathOf("secret"), &secret)) out->set_secret(secret);
  }
}

void DecodeOptions(Decoder* d, const Node& node, const std::string& path,
                   v1::PipelineOptions* out) {
  Fields f(d, node, path,
           {"on_failure", "timeout", "finally_timeout",
            "source_includes_pipeline_file", "executor", "unsupported"});
  if (const Node* n = f.Get("executor")) {
    d->String(*n, f.PathOf("executor"), out->mutable_executor());
  }
  if (const Node* n = f.Get("on_failure")) {
    int policy = 0;
    if (d->Enum(*n, f.PathOf("on_failure"), FailurePolicies(), "failure policy",
                &policy)) {
      out->set_on_failure(static_cast<v1::FailurePolicy>(policy));
    }
  }
  if (const Node* n = f.Get("timeout")) {
    d->Duration(*n, f.PathOf("timeout"), out->mutable_timeout());
  }
  if (const Node* n = f.Get("finally_timeout")) {
    d->Duration(*n, f.PathOf("finally_timeout"),
                out->mutable_finally_timeout());
  }
  if (const Node* n = f.Get("unsupported")) {
    static const auto* policies =
        new EnumNames{{"fail", v1::FAIL}, {"skip", v1::SKIP}};
    int policy = 0;
    if (d->Enum(*n, f.PathOf("unsupported"), *policies,
                "policy for unsupported tasks", &policy)) {
      out->set_unsupported(static_cast<v1::UnsupportedPolicy>(policy));
    }
  }
  if (const Node* n = f.Get("source_includes_pipeline_file")) {
    bool include = false;
    if (d->Bool(*n, f.PathOf("source_includes_pipeline_file"), &include)) {
      out->set_source_includes_pipeline_file(include);
    }
  }
}

void DecodeEnvironment(Decoder* d, const Node& node, const std::string& path,
                       v1::Environment* out) {
  static const auto* kinds =
      new EnumNames{{"preview", v1::PREVIEW}, {"permanent", v1::PERMANENT}};
  Fields f(d, node, path,
           {"name", "kind", "namespace", "context", "ttl", "factory"});
  if (const Node* n = f.Get("name"))
    d->String(*n, f.PathOf("name"), out->mutable_name());
  if (const Node* n = f.Get("kind")) {
    int kind = 0;
    if (d->Enum(*n, f.PathOf("kind"), *kinds, "environment kind", &kind)) {
      out->set_kind(static_cast<v1::EnvironmentKind>(kind));
    }
  }
  if (const Node* n = f.Get("namespace")) {
    d->String(*n, f.PathOf("namespace"), out->mutable_namespace_());
  }
  if (const Node* n = f.Get("context")) {
    d->String(*n, f.PathOf("context"), out->mutable_context());
  }
  if (const Node* n = f.Get("ttl")) {
    d->Duration(*n, f.PathOf("ttl"), out->mutable_ttl());
  }
  if (const Node* n = f.Get("factory")) {
    d->String(*n, f.PathOf("factory"), out->mutable_factory());
  }
}

void DecodeTasks(Decoder* d, const Node& node, const std::string& path,
                 google::protobuf::RepeatedPtrField<v1::Task>* out) {
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    DecodeTask(d, node.items()[i], Index(path, i), out->Add());
  }
}

}  // namespace

void DecodePipeline(Decoder* d, const Node& root, v1::Pipeline* out) {
  if (root.IsNull()) {
    d->Record("", root);
    d->Error(root,
             "the pipeline file is empty; expected a mapping with "
             "'name' and 'tasks'");
    return;
  }
  Fields f(d, root, "",
           {"name", "params", "options", "environments", "tasks", "finally",
            "notify"});
  if (!f.ok()) return;
  if (const Node* n = f.Get("name")) d->String(*n, "name", out->mutable_name());
  if (const Node* n = f.Get("params")) {
    if (d->ExpectSequence(*n, "params")) {
      for (size_t i = 0; i < n->items().size(); ++i) {
        DecodeParam(d, n->items()[i], Index("params", i), out->add_params());
      }
    }
  }
  if (const Node* n = f.Get("options")) {
    DecodeOptions(d, *n, "options", out->mutable_options());
  }
  if (const Node* n = f.Get("environments")) {
    if (d->ExpectSequence(*n, "environments")) {
      for (size_t i = 0; i < n->items().size(); ++i) {
        DecodeEnvironment(d, n->items()[i], Index("environments", i),
                          out->add_environments());
      }
    }
  }
  if (const Node* n = f.Get("tasks"))
    DecodeTasks(d, *n, "tasks", out->mutable_tasks());
  if (const Node* n = f.Get("finally")) {
    DecodeTasks(d, *n, "finally", out->mutable_finally());
  }
  if (const Node* n = f.Get("notify")) {
    DecodeNotify(d, *n, "notify", out->mutable_notify());
  }
}

}  // namespace kiln::pipeline::internal
