// Kustomize-compatible rendering: `kiln render DIR` and pipeline render tasks.
//
// RenderKustomization(dir) produces the same YAML stream as `kubectl
// kustomize dir` (kustomize v5.5.0): resources (files and nested
// kustomization directories), components, generators with content-hash
// names, patches (strategic merge and JSON 6902, with target selectors),
// namespace, name prefix/suffix, labels, annotations, images, replicas,
// name-reference updates, kustomize's default (legacy) resource order, and
// its exact YAML formatting.
//
// Loading is restricted to files inside each kustomization's directory;
// remote bases are refused (offline). Errors name the file and, where there
// is one, the line: InvalidArgument (bad YAML, bad patch, duplicate id),
// NotFound (missing file or kustomization), FailedPrecondition (cycle,
// nothing matched a patch), PermissionDenied (outside the root),
// Unimplemented (remote bases; kustomize features kiln does not implement,
// such as vars, replacements, helm charts and plugins, which are refused
// rather than ignored). A kustomization is decoded strictly, as kustomize
// does: unknown fields and wrongly typed values are InvalidArgument at
// FILE:LINE:COL (schema.h).
//
// Thread-safe: no shared state; reads only the files it is pointed at.
#ifndef KILN_ENGINE_RENDER_RENDER_H_
#define KILN_ENGINE_RENDER_RENDER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::render {

// Settings applied as if one more kustomization overlay, whose only resource
// is `dir`, set them: `namespace:`, `images:`, `commonLabels:` (labels reach
// selectors and templates), `namePrefix:` and `nameSuffix:`. Empty fields
// change nothing. Generated names get their hash after the overrides, and
// references follow renames, exactly as with a real overlay. `dir`'s own
// sortOptions still choose the output order.
struct RenderOverrides {
  std::string namespace_;
  std::vector<v1::ImageOverride> images;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string name_prefix, name_suffix;
};

// The YAML stream (documents separated by "---\n") for the kustomization in
// `dir`, byte-identical to `kubectl kustomize dir`.
absl::StatusOr<std::string> RenderKustomization(
    const std::string& dir, const RenderOverrides& overrides = {});

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_RENDER_H_
