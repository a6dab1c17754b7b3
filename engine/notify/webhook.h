// An HTTP POST of a JSON body to an incoming-webhook URL (Slack,
// Mattermost and Rocket.Chat accept {"text": ...}), for notifications.
//
// Retries: a connection error, a timeout, 429 or 5xx is retried with
// doubling backoff while the total budget lasts; any other status fails at
// once. The whole call never takes longer than `total_timeout` (plus one
// connect/transfer tick): a notification must never hang a run. Only http
// and https, no redirects followed, the response body read at most 64 KiB.
// The URL is a credential (an incoming webhook's path is its secret): no
// message of this module shows more than its scheme, host and port
// (RedactedUrl). Thread-safe (each call has its own handle).
#ifndef KILN_ENGINE_NOTIFY_WEBHOOK_H_
#define KILN_ENGINE_NOTIFY_WEBHOOK_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kiln::notify {

struct WebhookOptions {
  absl::Duration total_timeout = absl::Seconds(30);
  absl::Duration attempt_timeout = absl::Seconds(10);
  absl::Duration first_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(8);
  int max_attempts = 6;
};

struct WebhookDelivery {
  int attempts = 0;
  long http_status = 0;  // of the last attempt (0: no response)
};

// OK with the delivery when the receiver answered 2xx. Otherwise:
// InvalidArgument for a URL that is not http(s); Unavailable when retries
// ran out (connection errors, 429, 5xx); DeadlineExceeded when the budget
// ran out; FailedPrecondition for another status (e.g. 404: a removed
// webhook). Messages name RedactedUrl(url), the status and the attempts.
// `tried`, if given, receives the attempts and last status also on failure.
absl::StatusOr<WebhookDelivery> PostWebhook(
    const std::string& url, const std::string& json_body,
    const WebhookOptions& options = WebhookOptions(),
    WebhookDelivery* tried = nullptr);

// "scheme://host[:port]/…" (no user info, path or query), for messages.
std::string RedactedUrl(const std::string& url);

// The incoming-webhook body {"text": TEXT} (JSON-escaped).
std::string TextBody(const std::string& text);

}  // namespace kiln::notify

#endif  // KILN_ENGINE_NOTIFY_WEBHOOK_H_
