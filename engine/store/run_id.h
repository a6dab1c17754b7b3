// Run identifiers: "r" + UTC creation time to the microsecond + 8 random hex
// digits, e.g. "r20250311-101530-123456-3fa9c2d1". They sort by creation
// time as strings, are unique across processes, and are safe as file names.
#ifndef KILN_ENGINE_STORE_RUN_ID_H_
#define KILN_ENGINE_STORE_RUN_ID_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kiln::store {

// A fresh id for a run created at `now`. Thread-safe.
std::string NewRunId(absl::Time now);

// True if `id` has the shape NewRunId produces.
bool IsValidRunId(absl::string_view id);

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_RUN_ID_H_
