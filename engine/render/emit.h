// Prints Values as YAML exactly like `kubectl kustomize` (kyaml over go-yaml
// v3, which follows libyaml's emitter): block style, keys in bytewise order,
// 2-space indent with sequences not indented under their key, `{}`/`[]` for
// empty collections, plain scalars where they read back unchanged, else
// single quotes, else double quotes; multi-line strings as literal blocks
// (`|`, `|-`, `|+`, `|2`); plain and quoted text folded at 80 columns;
// keys longer than 128 bytes or multi-line as explicit `? KEY` / `:`
// entries; a root scalar indented by 2. Every output reads back (through
// ParseYamlStream) as the same value and re-emits identically.
// Thread-safe.
#ifndef KILN_ENGINE_RENDER_EMIT_H_
#define KILN_ENGINE_RENDER_EMIT_H_

#include <string>
#include <vector>

#include "engine/render/value.h"

namespace kiln::render {

// One document, ending in a newline, without a `---` marker.
std::string EmitDocument(const Value& doc);

// Documents joined by "---\n", as `kubectl kustomize` prints a stream.
std::string EmitStream(const std::vector<Value>& docs);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_EMIT_H_
