// LiveRun::Replay: a run recorded as the replay of an earlier one
// (engine/run_replay.h) and its events delivered. Split from live_run.cc.
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "engine/live_run.h"
#include "engine/store/run_store.h"

namespace kiln {

bool LiveRun::Replay(
    const store::ReplaySource& source,
    const std::vector<store::ReplayShardStamp>& refreshed_stamps) {
  {
    MutexLock lock(&mu_);
    // Anything emitted so far is recorded first: the replay's events take
    // the sequence numbers after it.
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return (pending_.empty() && !recording_) || pump_stop_;
    });
    if (!record_error_.ok() || pump_stop_) return false;
  }
  {
    MutexLock lock(&sched_mu_);
    if (cancels_ > 0 || draining_) return false;
  }
  TraceRecorder* trace = deps_.options->trace.get();
  ScopedSpan span(trace, trace != nullptr ? trace->Track("run") : 0, "replay");
  span.Arg("source", source.run_id);
  ScopedSpan record(trace, trace != nullptr ? trace->Track("run") : 0,
                    "record replay");
  // Without notifications to post first, the run's final event is
  // recorded with the replay (one transaction, one sync).
  std::vector<v1::RunEvent> after;
  if (pipeline().notify().empty()) {
    v1::RunEvent& done = after.emplace_back();
    done.mutable_run_state()->set_state(v1::RUN_SUCCEEDED);
  }
  const bool final_recorded = !after.empty();
  std::vector<v1::RunEvent> before(1);
  before[0].mutable_run_state()->set_state(v1::RUN_RUNNING);
  auto recorded =
      deps_.runs->RecordReplay(id_, source, absl::Now(), refreshed_stamps,
                               std::move(before), std::move(after));
  record.End();
  if (!recorded.ok()) return false;
  ScopedSpan deliver(trace, trace != nullptr ? trace->Track("run") : 0,
                     "deliver replay events");
  const size_t count = 2 * source.order.size();
  {
    MutexLock lock(&mu_);
    for (const v1::TaskStatus& t : source.tasks) {
      task_states_[t.name()] = v1::TASK_CACHED;
    }
    appended_ = !recorded->after.empty() ? recorded->after.back().sequence()
                                         : recorded->first_seq + count - 1;
    final_recorded_ = final_recorded;
    replayed_ = true;
  }
  MutexLock lock(&sub_mu_);
  auto give = [this](const v1::RunEvent& e)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(sub_mu_) {
                    for (auto& [sid, sub] : subs_) {
                      if (e.sequence() > sub.last) {
                        sub.cb(e);
                        sub.last = e.sequence();
                      }
                    }
                  };
  auto deliver_all = [&](const std::vector<v1::RunEvent>& events)
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(sub_mu_) {
                           for (const v1::RunEvent& e : events) give(e);
                         };
  deliver_all(recorded->before);
  // The task events are made one at a time in reused messages (a replay
  // of a large graph never holds them), and only for subscribers.
  if (!subs_.empty()) {
    store::ReplayedEventMaker maker(source, id_, recorded->first_seq,
                                    recorded->at);
    for (size_t i = 0; i < maker.size(); ++i) give(maker.At(i));
  }
  deliver_all(recorded->after);
  return true;
}

}  // namespace kiln
