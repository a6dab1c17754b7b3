// Checks of the pipeline's `notify:` entries: URL, outcomes, body
// template (known variables, valid JSON once rendered) and bounds.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "engine/notify/body_template.h"
#include "engine/notify/limits.h"
#include "engine/pipeline/suggest.h"
#include "engine/pipeline/validator.h"

namespace kiln::pipeline::internal {
namespace {

constexpr char kParamPrefix[] = "params.";

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

void Validator::CheckNotify() {
  if (p_.notify_size() > notify::kMaxNotifications) {
    Error("notify",
          absl::StrCat("notify: ", p_.notify_size(), " entries; at most ",
                       notify::kMaxNotifications));
  }
  std::vector<std::string> param_vars;
  for (const v1::Param& p : p_.params()) {
    param_vars.push_back(absl::StrCat(kParamPrefix, p.name()));
  }
  for (int i = 0; i < p_.notify_size(); ++i) {
    const v1::Notification& n = p_.notify(i);
    const std::string path = Index("notify", i);
    const std::string who = absl::StrCat("notification ", i + 1);

    // url: literal, or with ${params.NAME} (a secret param's value makes
    // the whole URL a credential).
    const std::string url_path = Field(path, "url");
    if (n.url().empty()) {
      Error(path, absl::StrCat(who, ": missing required field 'url'"));
    } else if (n.url().size() > notify::kMaxUrlBytes) {
      Error(url_path, absl::StrCat(who, ": url is longer than ",
                                   notify::kMaxUrlBytes, " bytes"));
    } else {
      absl::StatusOr<std::vector<std::string>> vars =
          notify::TemplateVariables(n.url());
      if (!vars.ok()) {
        Error(url_path, absl::StrCat(who, ": url: ", vars.status().message()));
      } else {
        for (const std::string& v : *vars) {
          if (!absl::StartsWith(v, kParamPrefix)) {
            Error(url_path, absl::StrCat(who,
                                         ": url may reference only params "
                                         "(${params.NAME}), not ${",
                                         v, "}"));
          } else if (params_.find(v.substr(sizeof(kParamPrefix) - 1)) ==
                     params_.end()) {
            Error(url_path,
                  absl::StrCat(who, ": url: ${", v, "} names unknown param",
                               DidYouMean(v, param_vars)));
          }
        }
        // A URL whose start comes from a param is checked when posted.
        if (!absl::StartsWith(n.url(), "${") &&
            !absl::StartsWith(n.url(), "http://") &&
            !absl::StartsWith(n.url(), "https://")) {
          Error(url_path, absl::StrCat(who,
                                       ": url must start with http:// "
                                       "or https://"));
        }
      }
    }

    if (n.on().empty()) {
      Error(path, absl::StrCat(who,
                               ": missing required field 'on' (one or more "
                               "of failed, succeeded, fixed, broken, "
                               "cancelled)"));
    }
    for (int k = 0; k < n.on_size(); ++k) {
      if (n.on(k) == v1::Notification::OUTCOME_UNSPECIFIED ||
          !v1::Notification::Outcome_IsValid(n.on(k))) {
        Error(Index(Field(path, "on"), k),
              absl::StrCat(who, ": unspecified outcome in 'on'"));
      }
    }

    if (n.has_timeout()) {
      absl::Duration d = ToDuration(n.timeout());
      if (d < absl::ZeroDuration() || d > notify::kMaxNotifyTimeout) {
        Error(Field(path, "timeout"),
              absl::StrCat(who, ": timeout must be from 0s (the default, ",
                           absl::FormatDuration(notify::kDefaultNotifyTimeout),
                           ") to ",
                           absl::FormatDuration(notify::kMaxNotifyTimeout)));
      }
    }
    if (n.has_retries() && n.retries() > notify::kMaxNotifyRetries) {
      Error(Field(path, "retries"), absl::StrCat(who, ": retries ", n.retries(),
                                                 " exceeds the maximum of ",
                                                 notify::kMaxNotifyRetries));
    }

    if (n.template_().empty()) continue;
    const std::string tpath = Field(path, "template");
    if (n.template_().size() > notify::kMaxTemplateBytes) {
      Error(tpath, absl::StrCat(who, ": template is longer than ",
                                notify::kMaxTemplateBytes, " bytes"));
      continue;
    }
    absl::StatusOr<std::vector<std::string>> vars =
        notify::TemplateVariables(n.template_());
    if (!vars.ok()) {
      Error(tpath, absl::StrCat(who, ": template: ", vars.status().message()));
      continue;
    }
    std::vector<std::string> known = notify::BodyVariables();
    for (const v1::Param& p : p_.params()) {
      if (!p.secret()) known.push_back(absl::StrCat(kParamPrefix, p.name()));
    }
    std::map<std::string, std::string> sample;
    for (const std::string& v : known) sample[v] = "x";
    bool ok = true;
    for (const std::string& v : *vars) {
      if (sample.count(v) != 0) continue;
      ok = false;
      auto param = params_.find(absl::StartsWith(v, kParamPrefix)
                                    ? v.substr(sizeof(kParamPrefix) - 1)
                                    : std::string());
      if (param != params_.end() && param->second->secret()) {
        Error(tpath,
              absl::StrCat(who, ": template: secret param '", param->first,
                           "' may not be sent in a body (only in url)"));
      } else {
        Error(tpath, absl::StrCat(who, ": template: unknown variable ${", v,
                                  "}; known: ",
                                  absl::StrJoin(notify::BodyVariables(), ", "),
                                  ", params.NAME", DidYouMean(v, known)));
      }
    }
    if (!ok) continue;
    absl::StatusOr<std::string> rendered =
        notify::RenderBody(n.template_(), sample);
    if (!rendered.ok()) {
      Error(tpath,
            absl::StrCat(who, ": template: ", rendered.status().message()));
    }
  }
}

}  // namespace kiln::pipeline::internal
