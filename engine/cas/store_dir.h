// Where kiln keeps its store, resolved the same way by every verb:
// the --store flag if given, else $KILN_STORE, else $HOME/.cache/kiln.
#ifndef KILN_ENGINE_CAS_STORE_DIR_H_
#define KILN_ENGINE_CAS_STORE_DIR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::cas {

// `flag_value` is the --store flag ("" when absent). FailedPrecondition when
// neither the flag, $KILN_STORE nor $HOME is set.
absl::StatusOr<std::string> ResolveStoreDir(absl::string_view flag_value);

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_STORE_DIR_H_
