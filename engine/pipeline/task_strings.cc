#include "engine/pipeline/task_strings.h"

#include "engine/pipeline/diagnostic.h"

namespace kiln::pipeline {
namespace {

using google::protobuf::RepeatedPtrField;

void List(RepeatedPtrField<std::string>* values, const std::string& path,
          FieldUse use, const TaskStringVisitor& visit) {
  for (int i = 0; i < values->size(); ++i) {
    visit(Index(path, i), values->Mutable(i), use);
  }
}

void Env(RepeatedPtrField<v1::EnvVar>* env, const std::string& path,
         FieldUse value_use, const TaskStringVisitor& visit) {
  for (int i = 0; i < env->size(); ++i) {
    std::string item = Index(path, i);
    visit(Field(item, "name"), env->Mutable(i)->mutable_name(),
          FieldUse::kLiteral);
    visit(Field(item, "value"), env->Mutable(i)->mutable_value(), value_use);
  }
}

void Labels(RepeatedPtrField<v1::Label>* labels, const std::string& path,
            const TaskStringVisitor& visit) {
  for (int i = 0; i < labels->size(); ++i) {
    std::string item = Index(path, i);
    visit(Field(item, "key"), labels->Mutable(i)->mutable_key(),
          FieldUse::kLiteral);
    visit(Field(item, "value"), labels->Mutable(i)->mutable_value(),
          FieldUse::kSubstituted);
  }
}

}  // namespace

void ForEachTaskString(v1::Task* task, const std::string& path,
                       const TaskStringVisitor& visit) {
  const FieldUse lit = FieldUse::kLiteral, sub = FieldUse::kSubstituted;
  visit(Field(path, "name"), task->mutable_name(), lit);
  List(task->mutable_needs(), Field(path, "needs"), lit, visit);
  for (int i = 0; i < task->inputs_size(); ++i) {
    std::string item = Index(Field(path, "inputs"), i);
    visit(Field(item, "artifact"), task->mutable_inputs(i)->mutable_artifact(),
          lit);
    visit(Field(item, "path"), task->mutable_inputs(i)->mutable_path(), lit);
  }
  for (int i = 0; i < task->outputs_size(); ++i) {
    std::string item = Index(Field(path, "outputs"), i);
    visit(Field(item, "artifact"), task->mutable_outputs(i)->mutable_artifact(),
          lit);
    List(task->mutable_outputs(i)->mutable_paths(), Field(item, "paths"), lit,
         visit);
  }
  switch (task->kind_case()) {
    case v1::Task::kRun: {
      std::string p = Field(path, "run");
      v1::RunSpec* run = task->mutable_run();
      visit(Field(p, "image"), run->mutable_image(), sub);
      List(run->mutable_command(), Field(p, "command"), sub, visit);
      Env(run->mutable_env(), Field(p, "env"), FieldUse::kSecretEnv, visit);
      visit(Field(p, "workdir"), run->mutable_workdir(), sub);
      visit(Field(p, "report"), run->mutable_report(), lit);
      break;
    }
    case v1::Task::kStash: {
      std::string p = Field(path, "stash");
      v1::StashSpec* stash = task->mutable_stash();
      visit(Field(p, "artifact"), stash->mutable_artifact(), lit);
      visit(Field(p, "from"), stash->mutable_from(), lit);
      List(stash->mutable_exclude(), Field(p, "exclude"), lit, visit);
      break;
    }
    case v1::Task::kUnstash: {
      std::string p = Field(path, "unstash");
      visit(Field(p, "artifact"), task->mutable_unstash()->mutable_artifact(),
            lit);
      visit(Field(p, "to"), task->mutable_unstash()->mutable_to(), lit);
      break;
    }
    case v1::Task::kContainerize: {
      std::string p = Field(path, "containerize");
      v1::ContainerizeSpec* c = task->mutable_containerize();
      visit(Field(p, "base"), c->mutable_base(), sub);
      for (int i = 0; i < c->layers_size(); ++i) {
        std::string item = Index(Field(p, "layers"), i);
        visit(Field(item, "artifact"), c->mutable_layers(i)->mutable_artifact(),
              lit);
        visit(Field(item, "to"), c->mutable_layers(i)->mutable_to(), lit);
      }
      List(c->mutable_entrypoint(), Field(p, "entrypoint"), sub, visit);
      List(c->mutable_cmd(), Field(p, "cmd"), sub, visit);
      Env(c->mutable_env(), Field(p, "env"), sub, visit);
      Labels(c->mutable_labels(), Field(p, "labels"), visit);
      visit(Field(p, "workdir"), c->mutable_workdir(), sub);
      visit(Field(p, "user"), c->mutable_user(), sub);
      visit(Field(p, "push"), c->mutable_push(), sub);
      visit(Field(p, "artifact"), c->mutable_artifact(), lit);
      visit(Field(p, "platform"), c->mutable_platform(), lit);
      break;
    }
    case v1::Task::kRender: {
      std::string p = Field(path, "render");
      v1::RenderSpec* r = task->mutable_render();
      std::string k = Field(p, "kustomization");
      visit(Field(k, "artifact"),
            r->mutable_kustomization()->mutable_artifact(), lit);
      visit(Field(k, "path"), r->mutable_kustomization()->mutable_path(), lit);
      visit(Field(p, "namespace"), r->mutable_namespace_(), sub);
      for (int i = 0; i < r->images_size(); ++i) {
        std::string item = Index(Field(p, "images"), i);
        v1::ImageOverride* o = r->mutable_images(i);
        visit(Field(item, "name"), o->mutable_name(), lit);
        visit(Field(item, "new_name"), o->mutable_new_name(), sub);
        visit(Field(item, "new_tag"), o->mutable_new_tag(), sub);
        visit(Field(item, "digest"), o->mutable_digest(), sub);
      }
      Labels(r->mutable_labels(), Field(p, "labels"), visit);
      visit(Field(p, "name_prefix"), r->mutable_name_prefix(), sub);
      visit(Field(p, "name_suffix"), r->mutable_name_suffix(), sub);
      visit(Field(p, "artifact"), r->mutable_artifact(), lit);
      break;
    }
    case v1::Task::kDeploy: {
      std::string p = Field(path, "deploy");
      v1::DeploySpec* d = task->mutable_deploy();
      visit(Field(p, "environment"), d->mutable_environment(), lit);
      visit(Field(p, "manifests"), d->mutable_manifests(), lit);
      visit(Field(p, "overlay"), d->mutable_overlay(), lit);
      visit(Field(p, "namespace"), d->mutable_namespace_(), sub);
      visit(Field(p, "context"), d->mutable_context(), sub);
      break;
    }
    default:
      break;
  }
}

}  // namespace kiln::pipeline
