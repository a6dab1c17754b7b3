#include "engine/environments/target.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/environments/naming.h"

namespace kiln::environments {

std::string LabelValue(absl::string_view value) {
  bool ok = !value.empty() && value.size() <= 63 &&
            absl::ascii_isalnum(static_cast<unsigned char>(value.front())) &&
            absl::ascii_isalnum(static_cast<unsigned char>(value.back()));
  for (char c : value) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '_' && c != '.') {
      ok = false;
    }
  }
  return ok ? std::string(value) : NamespaceName(value);
}

std::map<std::string, std::string> Target::Labels() const {
  std::map<std::string, std::string> labels = {
      {kAppLabel, LabelValue(app)},
      {kEnvironmentLabel, LabelValue(environment)},
      {kKindLabel, permanent() ? "permanent" : "preview"},
  };
  if (!branch.empty()) labels[kBranchLabel] = pipeline::BranchSlug(branch);
  return labels;
}

absl::StatusOr<Target> ResolveEnvironment(
    const v1::Pipeline& pipeline, absl::string_view environment,
    const pipeline::SubstitutionContext& context) {
  if (pipeline.environments().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("pipeline '", pipeline.name(),
                     "' declares no environments (add 'environments:'; "
                     "docs/environments.md)"));
  }
  std::vector<std::string> names;
  for (const v1::Environment& env : pipeline.environments()) {
    absl::StatusOr<std::string> name =
        pipeline::Substitute(env.name(), context);
    if (!name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "environment '", env.name(), "': name: ", name.status().message()));
    }
    names.push_back(*name);
    if (*name != environment) continue;
    Target t;
    t.app = pipeline.name();
    t.environment = *name;
    t.kind = env.kind() == v1::PERMANENT ? v1::PERMANENT : v1::PREVIEW;
    t.branch = context.trigger.branch();
    if (t.permanent()) {
      // Literal by validation: used exactly as written.
      t.namespace_name =
          env.namespace_().empty() ? env.name() : env.namespace_();
      t.context = env.context();
      if (!IsNamespaceName(t.namespace_name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("environment '", env.name(), "': namespace '",
                         t.namespace_name, "' is not a DNS-1123 label"));
      }
      return t;
    }
    absl::StatusOr<std::string> ns =
        pipeline::Substitute(env.namespace_(), context);
    if (!ns.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment '", env.name(),
                       "': namespace: ", ns.status().message()));
    }
    t.namespace_name = NamespaceName(*ns);
    absl::StatusOr<std::string> kube_context =
        pipeline::Substitute(env.context(), context);
    if (!kube_context.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment '", env.name(),
                       "': context: ", kube_context.status().message()));
    }
    t.context = *kube_context;
    if (env.has_ttl() && (env.ttl().seconds() > 0 || env.ttl().nanos() > 0)) {
      t.ttl = absl::Seconds(env.ttl().seconds()) +
              absl::Nanoseconds(env.ttl().nanos());
    }
    t.factory = env.factory();
    return t;
  }
  return absl::NotFoundError(
      absl::StrCat("pipeline '", pipeline.name(), "' has no environment '",
                   environment, "'; declared: ", absl::StrJoin(names, ", ")));
}

}  // namespace kiln::environments
