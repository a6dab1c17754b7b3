// Every string field of a task, with whether `${...}` references in it are
// substituted. One list shared by validation and run-time substitution so the
// two never disagree.
//
// Substituted fields: run.{image, command[], env[].value, workdir};
// containerize.{base, entrypoint[], cmd[], env[].value, labels[].value,
// workdir, user, push}; render.{namespace, images[].{new_name, new_tag,
// digest}, labels[].value, name_prefix, name_suffix}; deploy.{namespace,
// context}. Every other string (names, needs, artifacts, paths, keys) is
// literal and may not contain "${".
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

// Visits in a fixed order; `path` is the task's own path (e.g. "tasks[3]").
void ForEachTaskString(v1::Task* task, const std::string& path,
                       const TaskStringVisitor& visit);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_TASK_STRINGS_H_
