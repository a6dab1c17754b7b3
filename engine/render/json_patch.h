// RFC 6902 JSON Patch (add, remove, replace, move, copy, test) over Values,
// with RFC 6901 pointers (`~0`, `~1`, `-` for the end of a list). On error
// the document may be partly patched; callers patch a copy. Thread-safe.
#ifndef KILN_ENGINE_RENDER_JSON_PATCH_H_
#define KILN_ENGINE_RENDER_JSON_PATCH_H_

#include "absl/status/status.h"
#include "engine/render/value.h"

namespace kiln::render {

// `ops` is a list of {op, path, value?, from?} maps.
absl::Status ApplyJsonPatch(const Value& ops, Value* doc);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_JSON_PATCH_H_
