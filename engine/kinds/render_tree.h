// Rendering a kustomization that lies inside an artifact, shared by the
// `render` kind and the `deploy` kind's `overlay:` (render.cc).
#ifndef KILN_ENGINE_KINDS_RENDER_TREE_H_
#define KILN_ENGINE_KINDS_RENDER_TREE_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/kinds/kind.h"
#include "engine/render/render.h"

namespace kiln::kinds {

// Unstashes the artifact `digest_text` in the attempt's scratch directory,
// refuses it if a symlink in it may lead out of it, renders the
// kustomization at `path` (relative, inside the artifact) with `overrides`
// and stashes the manifests as `manifests.yaml`. Returns the manifests
// artifact's tree digest. Errors read "render: ..." or "unstash: ...",
// with no scratch path in them; a retryable one is Unavailable.
absl::StatusOr<std::string> RenderInArtifact(
    const KindCall& call, const std::string& digest_text,
    const std::string& path, const render::RenderOverrides& overrides);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_RENDER_TREE_H_
