// Strategic merge patch as kustomize (kyaml) applies it: maps merge
// recursively, a null deletes a key, lists of built-in kinds merge by their
// Kubernetes merge key (containers/env/volumes by name, container ports by
// containerPort, service ports by port, volumeMounts by mountPath, ...) with
// the patch's elements first and untouched originals after, other lists are
// replaced, and `$patch: delete` / `$patch: replace` are honoured.
// Thread-safe.
#ifndef KILN_ENGINE_RENDER_STRATEGIC_MERGE_H_
#define KILN_ENGINE_RENDER_STRATEGIC_MERGE_H_

#include "engine/render/value.h"

namespace kiln::render {

// Merges `patch` into `target`. builtin_kind: use the merge-key table (false
// for custom resources, whose lists are replaced wholesale). Returns false if
// the patch deletes the whole object (`$patch: delete` at the top).
bool StrategicMerge(const Value& patch, bool builtin_kind, Value* target);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_STRATEGIC_MERGE_H_
