#include "engine/run_notifications.h"

#include <utility>

namespace kiln {
namespace {

constexpr int kPageSize = 100;
constexpr int kMaxPages = 10;

}  // namespace

v1::RunState PreviousVerdict(store::RunStore* runs,
                             const std::string& pipeline_name,
                             const std::string& branch,
                             const std::string& run_id) {
  store::RunFilter filter;
  filter.pipeline_name = pipeline_name;
  std::string token;
  // Newest first: runs created after this one come before it.
  bool past_self = false;
  for (int page = 0; page < kMaxPages; ++page) {
    absl::StatusOr<store::RunPage> listed =
        runs->ListRuns(filter, kPageSize, token);
    if (!listed.ok()) return v1::RUN_STATE_UNSPECIFIED;
    for (const v1::Run& r : listed->runs) {
      if (r.id() == run_id) {
        past_self = true;
        continue;
      }
      if (!past_self || r.trigger().branch() != branch) continue;
      if (r.state() == v1::RUN_SUCCEEDED || r.state() == v1::RUN_FAILED ||
          r.state() == v1::RUN_TIMED_OUT) {
        return r.state();
      }
    }
    if (listed->next_page_token.empty()) break;
    token = listed->next_page_token;
  }
  return v1::RUN_STATE_UNSPECIFIED;
}

std::vector<v1::RunEvent> NotifyRunEnd(store::RunStore* runs,
                                       const v1::Pipeline& pipeline,
                                       notify::FinishedRun run) {
  std::vector<v1::RunEvent> events;
  if (pipeline.notify().empty()) return events;
  run.previous =
      PreviousVerdict(runs, pipeline.name(), run.trigger.branch(), run.run_id);
  for (v1::NotificationSent& sent : notify::SendNotifications(pipeline, run)) {
    v1::RunEvent e;
    *e.mutable_notification() = std::move(sent);
    events.push_back(std::move(e));
  }
  return events;
}

}  // namespace kiln
