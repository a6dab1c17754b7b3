// A preview environment's `factory: PATH#NAME` (docs/factories.md): the
// reference's form (checked with the rest of the pipeline, validate.h) and
// what it points at (checked when the pipeline is loaded from a file, whose
// directory PATH is relative to): the file exists and is YAML, declares a
// factory NAME (the top one or a nested one) and that factory has a
// `previews` template. The factory file itself is loaded fully by
// `kiln factory` and by the deploy that applies the template.
//
// Thread-safe (no shared state).
#ifndef KILN_ENGINE_PIPELINE_FACTORY_REFS_H_
#define KILN_ENGINE_PIPELINE_FACTORY_REFS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/pipeline/diagnostic.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

struct FactoryRef {
  std::string path;  // relative, no "..": inside the pipeline's directory
  std::string name;
};

// "PATH#NAME" -> its parts; InvalidArgument saying what is wrong.
absl::StatusOr<FactoryRef> ParseFactoryRef(absl::string_view text);

// The factory file's limit (as `kiln factory`'s).
inline constexpr size_t kMaxFactoryRefFileBytes = 4 << 20;

// Appends a positioned diagnostic per environment whose factory reference
// does not resolve in files under `base_dir`.
void CheckFactoryRefs(const v1::Pipeline& pipeline, const std::string& base_dir,
                      const SourceMap* map, std::vector<Diagnostic>* errors);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_FACTORY_REFS_H_
