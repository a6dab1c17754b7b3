// Kustomize's content hash for generated ConfigMaps and Secrets: SHA-256 of
// the Go-JSON encoding of {kind, name, data[, binaryData]} (ConfigMap) or
// {kind, type, name, data[, stringData]} (Secret), whose first 10 hex digits
// are then mapped 0->g 1->h 3->k a->m e->t. Thread-safe.
#ifndef KILN_ENGINE_RENDER_HASH_H_
#define KILN_ENGINE_RENDER_HASH_H_

#include <string>

#include "absl/strings/string_view.h"
#include "engine/render/value.h"

namespace kiln::render {

// Go encoding/json text of a Value (map keys sorted, HTML-safe escapes).
std::string ToJson(const Value& v);

// The 10-character suffix for `obj` as if it were named `name` (kustomize
// itself hashes generated objects with an empty name).
std::string ContentHash(const Value& obj, const std::string& name);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_HASH_H_
