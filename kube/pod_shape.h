// Validation of a pod shape (proto kiln.v1.PodShape): the rules the
// Kubernetes API applies to the same fields, checked before anything runs.
// Used by the pipeline loader (per YAML node, so errors carry FILE:LINE:COL)
// and by the pod executor for its per-executor defaults. Each check returns
// OK or InvalidArgument with a message naming the offending value (never a
// position: the caller adds that).
#ifndef KILN_KUBE_POD_SHAPE_H_
#define KILN_KUBE_POD_SHAPE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kiln/v1/pod.pb.h"

namespace kiln {

// A qualified name: optional DNS-subdomain prefix and '/', then a name of
// at most 63 characters, alphanumeric at both ends, [-_.A-Za-z0-9] inside.
absl::Status ValidateLabelKey(absl::string_view key);
// Empty, or at most 63 characters with the name rules above.
absl::Status ValidateLabelValue(absl::string_view value);
// A label key a task may set: valid, and not one kiln owns (kiln.dev/...,
// app.kubernetes.io/managed-by).
absl::Status ValidateUserLabelKey(absl::string_view key);
// A lowercase RFC 1123 subdomain (names of secrets, service accounts,
// runtime classes): at most 253 characters.
absl::Status ValidateDnsSubdomain(absl::string_view name);
// cpu, memory, ephemeral-storage, hugepages-<size>, or a domain-qualified
// extended resource (example.com/gpu).
absl::Status ValidateResourceName(absl::string_view name);
// A Kubernetes quantity, non-negative: "2", "500m", "1.5Gi", "1e3".
absl::Status ValidateQuantity(absl::string_view quantity);
// Operator Exists|Equal|"", effect ""|NoSchedule|PreferNoSchedule|NoExecute,
// key/value as labels (no value with Exists; a key unless Exists),
// toleration_seconds only with NoExecute.
absl::Status ValidateToleration(const v1::PodToleration& toleration);
// A JSON object whose keys are among nodeAffinity, podAffinity,
// podAntiAffinity, each an object.
absl::Status ValidateAffinityJson(absl::string_view json);
// Every field of `shape`; the message starts with the field's name
// ("node_selector: ...").
absl::Status ValidatePodShape(const v1::PodShape& shape);

// `overlay` over `base`: maps merged key by key (overlay wins), lists
// appended (tolerations, image pull secrets), scalars replaced when set.
v1::PodShape MergePodShapes(const v1::PodShape& base,
                            const v1::PodShape& overlay);

}  // namespace kiln

#endif  // KILN_KUBE_POD_SHAPE_H_
