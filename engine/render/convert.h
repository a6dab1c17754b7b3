// Converts a parsed YAML tree (engine/yaml) into a Value the way kustomize
// reads resources: plain scalars are typed (see scalar.h), quoted and block
// scalars are strings, `<<` merge keys are expanded (explicit keys win, then
// earlier merged maps), and non-string keys are rejected. Thread-safe.
#ifndef KILN_ENGINE_RENDER_CONVERT_H_
#define KILN_ENGINE_RENDER_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/render/value.h"
#include "engine/yaml/node.h"

namespace kiln::render {

// Errors are InvalidArgument "FILE:LINE:COL: message".
absl::StatusOr<Value> FromYaml(const yaml::Node& node,
                               absl::string_view filename);

// Parses every document of a YAML stream into Values (empty documents are
// dropped), using the hardened parser.
absl::StatusOr<std::vector<Value>> ParseYamlStream(absl::string_view text,
                                                   absl::string_view filename);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_CONVERT_H_
