// Fuzz harness: YAML text -> Value (engine/render/convert.h) -> emitted YAML.
// The emitted YAML must parse again and print identically (kustomize's
// output is a fixed point of rendering).
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
    if (!again.ok()) std::abort();
    std::string out2 =
        again->empty() ? "null\n" : kiln::render::EmitDocument((*again)[0]);
    if (out2 != out) std::abort();
  }
  return 0;
}
