#include "engine/cas/store_dir.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace kiln::cas {

absl::StatusOr<std::string> ResolveStoreDir(absl::string_view flag_value) {
  if (!flag_value.empty()) return std::string(flag_value);
  const char* env = std::getenv("KILN_STORE");
  if (env != nullptr && env[0] != '\0') return std::string(env);
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') {
    return absl::StrCat(home, "/.cache/kiln");
  }
  return absl::FailedPreconditionError(
      "no store directory: pass --store, or set KILN_STORE or HOME");
}

}  // namespace kiln::cas
