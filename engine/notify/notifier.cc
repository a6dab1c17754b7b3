#include "engine/notify/notifier.h"

#include <algorithm>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/notify/body_template.h"
#include "engine/notify/limits.h"
#include "engine/notify/webhook.h"

namespace kiln::notify {
namespace {

constexpr char kMasked[] = "(secret)";

bool Has(const v1::Notification& n, v1::Notification::Outcome on) {
  return std::find(n.on().begin(), n.on().end(), on) != n.on().end();
}

bool Failed(v1::RunState s) {
  return s == v1::RUN_FAILED || s == v1::RUN_TIMED_OUT;
}

std::string StateName(v1::RunState s) {
  switch (s) {
    case v1::RUN_SUCCEEDED:
      return "succeeded";
    case v1::RUN_FAILED:
      return "failed";
    case v1::RUN_CANCELLED:
      return "cancelled";
    case v1::RUN_TIMED_OUT:
      return "timed_out";
    case v1::RUN_QUEUED:
      return "queued";
    case v1::RUN_RUNNING:
      return "running";
    default:
      return "unspecified";
  }
}

std::string EventName(v1::EventKind e) {
  if (e == v1::EVENT_KIND_UNSPECIFIED) return "unspecified";
  return absl::AsciiStrToLower(v1::EventKind_Name(e));
}

// Every secret param's value (non-empty) of the run.
std::vector<std::string> SecretValues(const v1::Pipeline& pipeline,
                                      const FinishedRun& run) {
  std::vector<std::string> out;
  for (const v1::Param& p : pipeline.params()) {
    if (!p.secret()) continue;
    auto it = run.params.find(p.name());
    if (it != run.params.end() && !it->second.empty()) {
      out.push_back(it->second);
    }
  }
  // Longest first, so that a secret containing another is masked whole.
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() > b.size();
            });
  return out;
}

std::string Mask(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) {
    text = absl::StrReplaceAll(text, {{s, kMasked}});
  }
  return text;
}

bool UrlUsesSecret(const v1::Pipeline& pipeline, const std::string& url) {
  absl::StatusOr<std::vector<std::string>> vars = TemplateVariables(url);
  if (!vars.ok()) return true;  // cannot tell: treat as a credential
  for (const std::string& v : *vars) {
    for (const v1::Param& p : pipeline.params()) {
      if (p.secret() && v == absl::StrCat("params.", p.name())) return true;
    }
  }
  return false;
}

absl::Duration Timeout(const v1::Notification& n) {
  if (!n.has_timeout()) return kDefaultNotifyTimeout;
  absl::Duration d = absl::Seconds(n.timeout().seconds()) +
                     absl::Nanoseconds(n.timeout().nanos());
  if (d <= absl::ZeroDuration()) return kDefaultNotifyTimeout;
  return std::min(d, kMaxNotifyTimeout);
}

v1::NotificationSent Post(const v1::Pipeline& pipeline, int index,
                          const std::string& outcome, const FinishedRun& run,
                          const std::vector<std::string>& secrets,
                          const NotifierOptions& options) {
  const v1::Notification& n = pipeline.notify(index);
  v1::NotificationSent sent;
  sent.set_index(index);
  sent.set_on(outcome);
  const bool secret_url = UrlUsesSecret(pipeline, n.url());

  std::map<std::string, std::string> url_vars;
  for (const auto& [name, value] : run.params) {
    url_vars[absl::StrCat("params.", name)] = value;
  }
  absl::StatusOr<std::string> url = SubstituteVerbatim(n.url(), url_vars);
  if (!url.ok()) {
    sent.set_target(secret_url ? kMasked : "(invalid URL)");
    sent.set_error(
        Mask(absl::StrCat("url: ", url.status().message()), secrets));
    return sent;
  }
  const std::string redacted = RedactedUrl(*url);
  sent.set_target(secret_url ? kMasked : Mask(redacted, secrets));

  std::map<std::string, std::string> vars;
  vars["run.id"] = run.run_id;
  vars["run.state"] = StateName(run.state);
  vars["run.url"] = RunUrl(run.public_url, run.run_id);
  vars["run.reason"] = run.reason;
  vars["pipeline.name"] = pipeline.name();
  vars["trigger.branch"] = run.trigger.branch();
  vars["trigger.revision"] = run.trigger.revision();
  vars["trigger.author"] = run.trigger.author();
  vars["trigger.event"] = EventName(run.trigger.event());
  vars["failed_tasks"] = absl::StrJoin(run.failed_tasks, ", ");
  vars["notify.on"] = outcome;
  std::set<std::string> secret_names;
  for (const v1::Param& p : pipeline.params()) {
    if (p.secret()) secret_names.insert(p.name());
  }
  for (const auto& [name, value] : run.params) {
    if (secret_names.count(name) == 0)
      vars[absl::StrCat("params.", name)] = value;
  }
  // The receiver is outside: no secret value leaves in a body.
  for (auto& [name, value] : vars) value = Mask(value, secrets);

  std::string body;
  if (n.template_().empty()) {
    body = DefaultBody(vars);
  } else {
    absl::StatusOr<std::string> rendered = RenderBody(n.template_(), vars);
    if (!rendered.ok()) {
      sent.set_error(Mask(
          absl::StrCat("template: ", rendered.status().message()), secrets));
      return sent;
    }
    body = *std::move(rendered);
  }

  WebhookOptions wo;
  wo.total_timeout = Timeout(n);
  wo.attempt_timeout = std::min(wo.total_timeout, absl::Seconds(10));
  wo.first_backoff = options.first_backoff;
  wo.max_backoff = options.max_backoff;
  wo.max_attempts =
      1 + static_cast<int>(
              std::min(n.has_retries() ? n.retries() : kDefaultNotifyRetries,
                       kMaxNotifyRetries));
  WebhookDelivery tried;
  absl::StatusOr<WebhookDelivery> delivery =
      PostWebhook(*url, body, wo, &tried);
  sent.set_http_status(static_cast<int32_t>(tried.http_status));
  sent.set_attempts(static_cast<uint32_t>(tried.attempts));
  if (delivery.ok()) {
    sent.set_delivered(true);
    return sent;
  }
  std::string error(delivery.status().message());
  if (secret_url) error = absl::StrReplaceAll(error, {{redacted, kMasked}});
  sent.set_error(Mask(std::move(error), secrets));
  return sent;
}

}  // namespace

const char* OutcomeName(v1::Notification::Outcome on) {
  switch (on) {
    case v1::Notification::FAILED:
      return "failed";
    case v1::Notification::SUCCEEDED:
      return "succeeded";
    case v1::Notification::FIXED:
      return "fixed";
    case v1::Notification::BROKEN:
      return "broken";
    case v1::Notification::CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

std::string MatchingOutcome(const v1::Notification& n, const FinishedRun& run) {
  if (run.state == v1::RUN_SUCCEEDED) {
    if (Has(n, v1::Notification::FIXED) && Failed(run.previous)) return "fixed";
    if (Has(n, v1::Notification::SUCCEEDED)) return "succeeded";
  } else if (Failed(run.state)) {
    if (Has(n, v1::Notification::BROKEN) && run.previous == v1::RUN_SUCCEEDED) {
      return "broken";
    }
    if (Has(n, v1::Notification::FAILED)) return "failed";
  } else if (run.state == v1::RUN_CANCELLED) {
    if (Has(n, v1::Notification::CANCELLED)) return "cancelled";
  }
  return "";
}

std::string RunUrl(const std::string& public_url, const std::string& run_id) {
  if (public_url.empty()) return "";
  std::string base = public_url;
  while (absl::EndsWith(base, "/")) base.pop_back();
  return absl::StrCat(base, "/run?id=", run_id);
}

std::vector<v1::NotificationSent> SendNotifications(
    const v1::Pipeline& pipeline, const FinishedRun& run,
    const NotifierOptions& options) {
  std::vector<std::pair<int, std::string>> due;
  for (int i = 0; i < pipeline.notify_size() && i < kMaxNotifications; ++i) {
    std::string outcome = MatchingOutcome(pipeline.notify(i), run);
    if (!outcome.empty()) due.emplace_back(i, std::move(outcome));
  }
  std::vector<v1::NotificationSent> out(due.size());
  if (due.empty()) return out;
  const std::vector<std::string> secrets = SecretValues(pipeline, run);
  std::vector<std::thread> threads;
  threads.reserve(due.size());
  for (size_t k = 0; k < due.size(); ++k) {
    threads.emplace_back([&, k] {
      out[k] =
          Post(pipeline, due[k].first, due[k].second, run, secrets, options);
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

}  // namespace kiln::notify
