#include "engine/pipeline/task_strings.h"

#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/kind_spec.h"

namespace kiln::pipeline {

using google::protobuf::RepeatedPtrField;

void VisitList(RepeatedPtrField<std::string>* values, const std::string& path,
               FieldUse use, const TaskStringVisitor& visit) {
  for (int i = 0; i < values->size(); ++i) {
    visit(Index(path, i), values->Mutable(i), use);
  }
}

void VisitEnv(RepeatedPtrField<v1::EnvVar>* env, const std::string& path,
              FieldUse value_use, const TaskStringVisitor& visit) {
  for (int i = 0; i < env->size(); ++i) {
    std::string item = Index(path, i);
    visit(Field(item, "name"), env->Mutable(i)->mutable_name(),
          FieldUse::kLiteral);
    visit(Field(item, "value"), env->Mutable(i)->mutable_value(), value_use);
  }
}

void VisitLabels(RepeatedPtrField<v1::Label>* labels, const std::string& path,
                 const TaskStringVisitor& visit) {
  for (int i = 0; i < labels->size(); ++i) {
    std::string item = Index(path, i);
    visit(Field(item, "key"), labels->Mutable(i)->mutable_key(),
          FieldUse::kLiteral);
    visit(Field(item, "value"), labels->Mutable(i)->mutable_value(),
          FieldUse::kSubstituted);
  }
}

void ForEachTaskString(v1::Task* task, const std::string& path,
                       const TaskStringVisitor& visit) {
  const FieldUse lit = FieldUse::kLiteral;
  visit(Field(path, "name"), task->mutable_name(), lit);
  VisitList(task->mutable_needs(), Field(path, "needs"), lit, visit);
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
    VisitList(task->mutable_outputs(i)->mutable_paths(), Field(item, "paths"),
              lit, visit);
  }
  if (const KindSpec* kind = KindOf(*task)) {
    kind->ForEachString(task, path, visit);
  }
}

}  // namespace kiln::pipeline
