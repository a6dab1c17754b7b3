// An environment resolved for one trigger: which namespace of which cluster
// context a deploy goes to, and what kind of environment it is. Pure.
#ifndef KILN_ENGINE_ENVIRONMENTS_TARGET_H_
#define KILN_ENGINE_ENVIRONMENTS_TARGET_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/pipeline/substitute.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::environments {

// A preview's ttl when the pipeline sets none.
inline constexpr absl::Duration kDefaultPreviewTtl = absl::Hours(7 * 24);

// Labels and annotation kiln puts on the namespaces it creates.
inline constexpr char kAppLabel[] = "kiln.dev/app";
inline constexpr char kBranchLabel[] = "kiln.dev/branch";
inline constexpr char kEnvironmentLabel[] = "kiln.dev/environment";
inline constexpr char kKindLabel[] = "kiln.dev/environment-kind";
inline constexpr char kExpiresAnnotation[] = "kiln.dev/expires-at";

struct Target {
  std::string app;          // the pipeline's name
  std::string environment;  // the declared name, substituted
  v1::EnvironmentKind kind = v1::PREVIEW;
  std::string namespace_name;               // a DNS-1123 label
  std::string context;                      // kubeconfig context; "" = current
  std::string branch;                       // the trigger's branch (may be "")
  absl::Duration ttl = kDefaultPreviewTtl;  // previews
  // Previews: "PATH#NAME" of the factory whose template the namespace
  // gets (preview_template.h); "" = none.
  std::string factory;

  bool permanent() const { return kind == v1::PERMANENT; }
  // kAppLabel .. kKindLabel (values made valid label values).
  std::map<std::string, std::string> Labels() const;
};

// The declared environment whose name, substituted in `context`, is
// `environment` (a deploy task's substituted `environment`). NotFound
// naming the declared ones; FailedPrecondition when the pipeline declares
// no environments; InvalidArgument when a template does not substitute.
absl::StatusOr<Target> ResolveEnvironment(
    const v1::Pipeline& pipeline, absl::string_view environment,
    const pipeline::SubstitutionContext& context);

// A label value (<= 63 of [A-Za-z0-9-_.], alphanumeric at both ends) from
// any string: kept when valid, else NamespaceName(value).
std::string LabelValue(absl::string_view value);

}  // namespace kiln::environments

#endif  // KILN_ENGINE_ENVIRONMENTS_TARGET_H_
