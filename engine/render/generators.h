// configMapGenerator / secretGenerator: builds the ConfigMap or Secret an
// entry describes (literals, files, envs; generatorOptions), marked for
// kustomize's content-hash name suffix unless disabled. Thread-safe.
#ifndef KILN_ENGINE_RENDER_GENERATORS_H_
#define KILN_ENGINE_RENDER_GENERATORS_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/render/resource.h"

namespace kiln::render {

// Reads a file named relative to the kustomization root (load restricted).
using FileReader =
    std::function<absl::StatusOr<std::string>(const std::string& relative)>;

// entry: one generator item; global_options: the kustomization's
// generatorOptions (may be null). secret: Secret instead of ConfigMap.
absl::StatusOr<Resource> Generate(const Value& entry,
                                  const Value* global_options, bool secret,
                                  const FileReader& read);

// kustomize's base64 for Secret data: lines of 70 characters, each ending in
// a newline when there is more than one.
std::string Base64Lines(const std::string& data);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_GENERATORS_H_
