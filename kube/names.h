// Kubernetes object names and API paths.
#ifndef KILN_KUBE_NAMES_H_
#define KILN_KUBE_NAMES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kiln::kube {

// A DNS-1123 label (<= 63 chars of [a-z0-9-], starting and ending with an
// alphanumeric) made from `base`: lowercased, other characters become '-'.
// When that changed anything but case, or had to truncate, a 10-character
// hash of the original `base` is appended ("-" + hash), so distinct inputs
// keep distinct labels. Deterministic; never empty.
std::string DnsLabel(absl::string_view base);

// True when `name` already is a DNS-1123 label.
bool IsDnsLabel(absl::string_view name);

// API paths (core/v1). Names are not escaped: pass valid object names.
std::string NamespacesPath();
std::string NamespacePath(absl::string_view name);
std::string PodsPath(absl::string_view ns);
std::string PodPath(absl::string_view ns, absl::string_view name);
std::string SecretsPath(absl::string_view ns);
std::string SecretPath(absl::string_view ns, absl::string_view name);
std::string ConfigMapsPath(absl::string_view ns);
std::string EventsPath(absl::string_view ns);

}  // namespace kiln::kube

#endif  // KILN_KUBE_NAMES_H_
