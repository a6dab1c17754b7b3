// Posts a finished run's pipeline notifications (Pipeline.notify): picks
// the entries whose `on` matches the run's outcome, renders each body,
// posts them in parallel (PostWebhook: retries with backoff within the
// entry's timeout) and reports one NotificationSent per post.
//
// Never fails and never takes longer than the largest entry timeout (plus
// one connect/transfer tick): a notification cannot change or hold a run.
// Secrets: a URL that references a secret param is shown as "(secret)";
// every secret value is masked in the errors reported. Thread-safe.
#ifndef KILN_ENGINE_NOTIFY_NOTIFIER_H_
#define KILN_ENGINE_NOTIFY_NOTIFIER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln::notify {

// What a finished run tells its notifications.
struct FinishedRun {
  std::string run_id;
  v1::RunState state = v1::RUN_STATE_UNSPECIFIED;
  std::string reason;
  // The previous finished run of this pipeline on this branch that
  // succeeded, failed or timed out (cancelled runs are passed over);
  // RUN_STATE_UNSPECIFIED when there is none.
  v1::RunState previous = v1::RUN_STATE_UNSPECIFIED;
  std::vector<std::string> failed_tasks;
  v1::Trigger trigger;
  // Every param's value for this run (secret ones included).
  std::map<std::string, std::string> params;
  // The run's page ("" for none): base URL of the dashboard.
  std::string public_url;
};

// "failed", "succeeded", "fixed", "broken", "cancelled".
const char* OutcomeName(v1::Notification::Outcome on);

// The outcome of `run` that `notification` posts on, most specific first
// (fixed before succeeded, broken before failed); "" when none matches.
std::string MatchingOutcome(const v1::Notification& notification,
                            const FinishedRun& run);

// The page of a run: "<public_url>/run?id=<id>", or "" without a base.
std::string RunUrl(const std::string& public_url, const std::string& run_id);

struct NotifierOptions {
  // The first retry's delay (doubling, at most max_backoff).
  absl::Duration first_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(8);
};

// Posts every matching notification of `pipeline` for `run`; one report per
// post, in pipeline order. `pipeline` is valid (ValidatePipeline).
std::vector<v1::NotificationSent> SendNotifications(
    const v1::Pipeline& pipeline, const FinishedRun& run,
    const NotifierOptions& options = NotifierOptions());

}  // namespace kiln::notify

#endif  // KILN_ENGINE_NOTIFY_NOTIFIER_H_
