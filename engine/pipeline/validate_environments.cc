// Pipeline.environments and the deploy tasks naming them
// (docs/environments.md).
//
// Rules: every environment has a name (distinct) and a kind. A permanent
// environment is fully literal (name, namespace, context: no ${...}), its
// namespace a DNS-1123 label (default: its name) and it has no ttl, so the
// set of namespaces the permanent guard protects is known from the file
// alone. A preview names a namespace template (params and trigger fields
// only) and may set a ttl. When any environment is declared, a task's
// `environment` must be one of the declared names, as written, and the task
// may not set what the environment owns (kind, namespace, context).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/environments/naming.h"
#include "engine/pipeline/factory_refs.h"
#include "engine/pipeline/substitute.h"
#include "engine/pipeline/suggest.h"
#include "engine/pipeline/validator.h"

namespace kiln::pipeline::internal {
namespace {

constexpr int64_t kMinTtlSeconds = 60;
constexpr int64_t kMaxTtlSeconds = 366 * 24 * 3600;

bool IsEnvironmentName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool HasReference(const std::string& s) {
  return s.find("${") != std::string::npos;
}

}  // namespace

void Validator::CheckEnvironmentString(const std::string& path,
                                       const std::string& value,
                                       const std::string& who) {
  if (!HasReference(value)) return;
  std::vector<Reference> refs;
  absl::Status s = ParseReferences(value, &refs);
  if (!s.ok()) {
    Error(path, absl::StrCat(who, ": ", s.message()));
    return;
  }
  std::vector<std::string> param_names;
  for (const v1::Param& p : p_.params()) param_names.push_back(p.name());
  for (const Reference& ref : refs) {
    switch (ref.kind) {
      case Reference::Kind::kParam: {
        auto it = params_.find(ref.name);
        if (it == params_.end()) {
          Error(path,
                absl::StrCat(who, ": ", ref.text, " names unknown param '",
                             ref.name, "'", DidYouMean(ref.name, param_names)));
        } else if (it->second->secret()) {
          Error(path, absl::StrCat(who, ": secret param '", ref.name,
                                   "' may not name an environment"));
        }
        break;
      }
      case Reference::Kind::kTrigger:
        if (std::find(TriggerFields().begin(), TriggerFields().end(),
                      ref.name) == TriggerFields().end()) {
          Error(path,
                absl::StrCat(who, ": ", ref.text,
                             " names unknown trigger field '", ref.name,
                             "'; known: ", absl::StrJoin(TriggerFields(), ", "),
                             DidYouMean(ref.name, TriggerFields())));
        }
        break;
      case Reference::Kind::kTaskOutput:
      case Reference::Kind::kTaskResult:
        Error(path, absl::StrCat(who, ": ", ref.text,
                                 ": an environment may only use ${params.X} "
                                 "and ${trigger.X} (it is known before any "
                                 "task runs)"));
        break;
    }
  }
}

void Validator::CheckEnvironments() {
  for (int i = 0; i < p_.environments_size(); ++i) {
    const v1::Environment& env = p_.environments(i);
    const std::string path = Index("environments", i);
    if (env.name().empty()) {
      Error(path, "environment: missing required field 'name'");
      continue;
    }
    const std::string who = absl::StrCat("environment '", env.name(), "'");
    auto [it, inserted] = environments_.emplace(env.name(), i);
    if (!inserted) {
      Error(Field(path, "name"),
            absl::StrCat("duplicate environment '", env.name(), "'"));
      continue;
    }
    if (env.kind() == v1::ENVIRONMENT_KIND_UNSPECIFIED) {
      Error(path, absl::StrCat(who,
                               ": missing required field 'kind' "
                               "(preview or permanent)"));
      continue;
    }
    const std::string ttl_path = Field(path, "ttl");
    if (env.kind() == v1::PERMANENT) {
      for (const auto& [field, value] :
           {std::make_pair("name", &env.name()),
            std::make_pair("namespace", &env.namespace_()),
            std::make_pair("context", &env.context())}) {
        if (HasReference(*value)) {
          Error(Field(path, field),
                absl::StrCat(who, ": a permanent environment's ", field,
                             " must be literal (no ${...}): the namespaces "
                             "kiln must never delete are read from the file"));
        }
      }
      if (!HasReference(env.name()) && !IsEnvironmentName(env.name())) {
        Error(Field(path, "name"),
              absl::StrCat("invalid environment name '", env.name(),
                           "': use letters, digits, '-' and '_' (at most 63)"));
      }
      const std::string& ns =
          env.namespace_().empty() ? env.name() : env.namespace_();
      if (!HasReference(ns) && !environments::IsNamespaceName(ns)) {
        Error(Field(path, env.namespace_().empty() ? "name" : "namespace"),
              absl::StrCat(who, ": namespace '", ns,
                           "' is not a DNS-1123 label (lowercase letters, "
                           "digits and '-', at most 63); a permanent "
                           "namespace is used exactly as written"));
      }
      if (env.has_ttl()) {
        Error(ttl_path, absl::StrCat(who,
                                     ": 'ttl' is only for preview "
                                     "environments (a permanent one is "
                                     "never destroyed)"));
      }
      if (!env.factory().empty()) {
        Error(Field(path, "factory"),
              absl::StrCat(who,
                           ": 'factory' is only for preview environments (a "
                           "permanent namespace is declared in the factory "
                           "file and made by `kiln factory apply`)"));
      }
      continue;
    }
    // Preview.
    CheckEnvironmentString(Field(path, "name"), env.name(), who);
    if (!HasReference(env.name()) && !IsEnvironmentName(env.name())) {
      Error(Field(path, "name"),
            absl::StrCat("invalid environment name '", env.name(),
                         "': use letters, digits, '-' and '_' (at most 63)"));
    }
    if (env.namespace_().empty()) {
      Error(path, absl::StrCat(who,
                               ": missing required field 'namespace' (for "
                               "example \"app-${trigger.branch_slug}\")"));
    } else {
      CheckEnvironmentString(Field(path, "namespace"), env.namespace_(), who);
    }
    CheckEnvironmentString(Field(path, "context"), env.context(), who);
    if (!env.factory().empty()) {
      absl::StatusOr<FactoryRef> ref = ParseFactoryRef(env.factory());
      if (!ref.ok()) {
        Error(Field(path, "factory"),
              absl::StrCat(who, ": ", ref.status().message()));
      }
    }
    if (env.has_ttl()) {
      int64_t s = env.ttl().seconds();
      if (s < kMinTtlSeconds || s > kMaxTtlSeconds) {
        Error(ttl_path, absl::StrCat(who,
                                     ": ttl must be between 1m and 366 days "
                                     "(default 7 days)"));
      }
    }
  }
  // A preview whose namespace is literally a permanent one's would let a
  // destroy reach it: refuse it here (the guard refuses it at run time too).
  for (int i = 0; i < p_.environments_size(); ++i) {
    const v1::Environment& env = p_.environments(i);
    if (env.kind() != v1::PREVIEW || HasReference(env.namespace_())) continue;
    std::string ns = environments::NamespaceName(env.namespace_());
    for (const v1::Environment& other : p_.environments()) {
      if (other.kind() != v1::PERMANENT) continue;
      const std::string& pns =
          other.namespace_().empty() ? other.name() : other.namespace_();
      if (pns == ns) {
        Error(Field(Index("environments", i), "namespace"),
              absl::StrCat("environment '", env.name(), "': namespace '", ns,
                           "' is permanent environment '", other.name(),
                           "''s; a preview namespace must be its own"));
      }
    }
  }
}

void Validator::CheckEnvironmentUse(int t, const KindFacts& facts) {
  if (facts.environment_field.empty() || p_.environments().empty()) return;
  const std::string& path = tasks_[t].path;
  if (facts.environment.empty()) return;  // the kind reports it missing
  if (environments_.find(facts.environment) == environments_.end()) {
    std::vector<std::string> names;
    for (const v1::Environment& e : p_.environments()) {
      names.push_back(e.name());
    }
    Error(Field(path, facts.environment_field),
          absl::StrCat(Who(t), ": unknown environment '", facts.environment,
                       "'; declared: ", absl::StrJoin(names, ", "),
                       DidYouMean(facts.environment, names)));
    return;
  }
  for (const std::string& field : facts.environment_overrides) {
    Error(Field(path, field),
          absl::StrCat(Who(t), ": '", field, "' is declared by environment '",
                       facts.environment,
                       "' (pipeline 'environments'); remove it here"));
  }
}

void Validator::CheckPromotion(int t, const KindFacts& facts) {
  // Without `from` the kind reports it; a named run was deployed before.
  if (facts.promote_from_field.empty() || facts.promote_from.empty() ||
      !facts.promote_same_run || !acyclic_) {
    return;
  }
  const std::string& from = facts.promote_from;
  std::vector<std::string> unneeded;  // deploy `from`, not among t's needs
  std::vector<std::string> known;     // every environment deployed to
  bool needs_a_deploy = false;
  for (int u = 0; u < static_cast<int>(tasks_.size()); ++u) {
    if (u == t) continue;
    const KindSpec* kind = KindOf(*tasks_[u].task);
    if (kind == nullptr) continue;
    KindFacts f = kind->Facts(*tasks_[u].task);
    if (f.environment_field.empty() || f.environment.empty()) continue;
    known.push_back(f.environment);
    bool needed = IsAncestor(u, t);
    needs_a_deploy = needs_a_deploy || needed;
    if (f.environment != from) continue;
    if (needed) return;
    unneeded.push_back(tasks_[u].task->name());
  }
  // A name resolved at run time: any deploy it needs may be the one (the
  // run-time lookup says when it is not).
  if (HasReference(from) && needs_a_deploy) return;
  const std::string path = Field(tasks_[t].path, facts.promote_from_field);
  if (!unneeded.empty()) {
    Error(path,
          absl::StrCat(Who(t), ": promotes environment '", from,
                       "' of this run, but does not need task '",
                       unneeded.front(), "' that deploys it: add '",
                       unneeded.front(), "' to its needs (the deploy to '",
                       from, "' must come first)"));
    return;
  }
  for (const v1::Environment& e : p_.environments()) known.push_back(e.name());
  std::sort(known.begin(), known.end());
  known.erase(std::unique(known.begin(), known.end()), known.end());
  Error(path,
        absl::StrCat(Who(t), ": promotes environment '", from,
                     "' of this run, but no task deploys to it: the deploy "
                     "to '",
                     from,
                     "' must come first in this task's needs (or name an "
                     "earlier run with promote.run)",
                     DidYouMean(from, known)));
}

}  // namespace kiln::pipeline::internal
