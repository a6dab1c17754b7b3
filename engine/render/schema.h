// Strict checking of a kustomization file against the fields kustomize
// v5.5.0 knows, as kustomize's own (strict JSON) decoding does: an unknown
// field is an error (with the nearest known name suggested), and so is a
// value of the wrong type (a boolean or number where a string is required,
// a string where a list is). Fields kustomize knows but kiln does not
// implement (vars, replacements, helm charts, plugins, configurations...)
// are refused as unsupported rather than silently ignored.
#ifndef KILN_ENGINE_RENDER_SCHEMA_H_
#define KILN_ENGINE_RENDER_SCHEMA_H_

#include <string>

#include "absl/status/status.h"
#include "engine/yaml/node.h"

namespace kiln::render {

// InvalidArgument "FILE:LINE:COL: ..." for an unknown field or a wrong
// type; Unimplemented for a known field kiln does not support.
absl::Status ValidateKustomization(const yaml::Node& root,
                                   const std::string& file);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_SCHEMA_H_
