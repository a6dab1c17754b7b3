// Every string field of a task, with whether `${...}` references in it are
// substituted. The common fields are visited here, the kind's spec by its
// kind (kind_spec.h). One list shared by validation and run-time substitution
// so the two never disagree.
//
// Substituted fields: run.{image, command[], env[].value, workdir};
// containerize.{base, entrypoint[], cmd[], env[].value, labels[].value,
// workdir, user, push}; render.{namespace, images[].{new_name, new_tag,
// digest}, labels[].value, name_prefix, name_suffix}; deploy.{environment,
// namespace, context}. Every other string (names, needs, artifacts, paths,
// keys) is literal and may not contain "${".
#ifndef KILN_ENGINE_PIPELINE_TASK_STRINGS_H_
#define KILN_ENGINE_PIPELINE_TASK_STRINGS_H_

#include <functional>
#include <string>

#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

enum class FieldUse {
  kLiteral,      // never substituted; "${" is an error
  kSubstituted,  // references substituted; secret params not allowed
  kSecretEnv,    // run.env values: also secret params
};

using TaskStringVisitor = std::function<void(const std::string& path,
                                             std::string* value, FieldUse use)>;

// Helpers for the kinds' own strings: each item of a list; each env var's
// name (literal) and value (`value_use`); each label's key (literal) and
// value (substituted).
void VisitList(google::protobuf::RepeatedPtrField<std::string>* values,
               const std::string& path, FieldUse use,
               const TaskStringVisitor& visit);
void VisitEnv(google::protobuf::RepeatedPtrField<v1::EnvVar>* env,
              const std::string& path, FieldUse value_use,
              const TaskStringVisitor& visit);
void VisitLabels(google::protobuf::RepeatedPtrField<v1::Label>* labels,
                 const std::string& path, const TaskStringVisitor& visit);

// Visits in a fixed order; `path` is the task's own path (e.g. "tasks[3]").
void ForEachTaskString(v1::Task* task, const std::string& path,
                       const TaskStringVisitor& visit);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_TASK_STRINGS_H_
