// Fuzzes the registry client's parsers of untrusted text: image references,
// WWW-Authenticate challenges, docker config files. None may crash, hang or
// read out of bounds; what parses must be well-formed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/oci/registry/auth.h"
#include "engine/oci/registry/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto ref = kiln::oci::registry::ParseReference(text);
  if (ref.ok()) {
    // The canonical text parses to the same reference.
    auto again = kiln::oci::registry::ParseReference(ref->ToString());
    if (!again.ok() || again->ToString() != ref->ToString()) abort();
  }
  for (const auto& c : kiln::oci::registry::ParseChallenges(text)) {
    if (c.scheme.empty()) abort();
  }
  (void)kiln::oci::registry::ParseDockerConfig(text);
  return 0;
}
