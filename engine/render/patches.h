// Patch targets and application: kustomize's `patches:` selectors (group,
// version, kind, name, namespace as anchored regexes; labelSelector and
// annotationSelector with =, ==, !=, in, notin, exists, !exists), and the
// application of one patch document (strategic merge or JSON 6902) to the
// resources it selects. Thread-compatible.
#ifndef KILN_ENGINE_RENDER_PATCHES_H_
#define KILN_ENGINE_RENDER_PATCHES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/render/resource.h"

namespace kiln::render {

// Indices of the resources a `target:` selector picks.
absl::StatusOr<std::vector<size_t>> SelectTargets(
    const Value& selector, const std::vector<Resource>& resources);

// Applies patch documents parsed from one patch source. `docs` is either a
// JSON 6902 op list (one document that is a list; needs `target`) or
// strategic-merge documents, each applied to `target`'s selection or, with
// no target, to the resource its own kind/name/namespace identify (earlier
// names count). `where` prefixes error messages.
absl::Status ApplyPatch(const std::vector<Value>& docs, const Value* target,
                        const std::string& where,
                        std::vector<Resource>* resources);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_PATCHES_H_
