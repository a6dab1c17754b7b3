// Environment namespace names: what a namespace template's result becomes
// in the cluster. Pure functions; thread-safe.
#ifndef KILN_ENGINE_ENVIRONMENTS_NAMING_H_
#define KILN_ENGINE_ENVIRONMENTS_NAMING_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace kiln::environments {

inline constexpr size_t kMaxNamespaceLength = 63;

// A DNS-1123 label (<= 63 of [a-z0-9-], starting and ending with [a-z0-9])
// from `raw`: ASCII letters lowercased; every run of other bytes than
// [a-z0-9] (punctuation, '_', '/', non-ASCII UTF-8) becomes one '-';
// leading and trailing '-' removed. Longer than 63: cut to 52 characters
// (trailing '-' removed) + '-' + 10 hex digits of a 64-bit FNV-1a hash of
// `raw`, so two long names sharing a prefix stay distinct. Empty: "env-"
// and the hash. Deterministic across runs and machines.
//   "kcow-Feature/JIRA-12_Fix" -> "kcow-feature-jira-12-fix"
std::string NamespaceName(absl::string_view raw);

// True when `name` already is a DNS-1123 label (what a permanent
// environment's namespace must be, as written).
bool IsNamespaceName(absl::string_view name);

}  // namespace kiln::environments

#endif  // KILN_ENGINE_ENVIRONMENTS_NAMING_H_
