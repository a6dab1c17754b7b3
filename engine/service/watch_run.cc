// KilnService::WatchRun: a run's events, resumable by sequence number.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "engine/service/event_queue.h"
#include "engine/service/kiln_service.h"

namespace kiln::service {
namespace {

bool IsFinal(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED || state == v1::RUN_TIMED_OUT;
}

bool EndsRun(const v1::RunEvent& event) {
  return event.has_run_state() && IsFinal(event.run_state().state());
}

// Why a watch stream that StreamOver() ended stops: the client left, or
// the server is shutting down (the client resumes after `last_sent`).
grpc::Status EndedStatus(grpc::ServerContext* context, uint64_t last_sent) {
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      absl::StrCat("server shutting down; resume after sequence ", last_sent));
}

// Unsubscribes when the stream ends, however it ends.
class Subscription {
 public:
  Subscription(std::shared_ptr<RunHandle> run, int id)
      : run_(std::move(run)), id_(id) {}
  ~Subscription() { run_->Unsubscribe(id_); }

 private:
  std::shared_ptr<RunHandle> run_;
  int id_;
};

}  // namespace

grpc::Status KilnService::WatchRun(grpc::ServerContext* context,
                                   const v1::WatchRunRequest* request,
                                   grpc::ServerWriter<v1::RunEvent>* writer) {
  absl::StatusOr<StreamLimiter::Slot> slot = AdmitStream(context, "WatchRun");
  if (!slot.ok()) return ToGrpc(slot.status());
  return StreamEvents(context, request->run_id(), request->after_sequence(),
                      writer);
}

grpc::Status KilnService::StreamEvents(
    grpc::ServerContext* context, const std::string& run_id,
    uint64_t after_sequence, grpc::ServerWriter<v1::RunEvent>* writer) {
  absl::StatusOr<std::shared_ptr<RunHandle>> run = engine_->Find(run_id);
  if (!run.ok()) return ToGrpc(run.status());

  // A finished run whose events the client already has: nothing to send.
  // (Every run has a first event: from sequence 0 there is always one.)
  if (after_sequence > 0) {
    absl::StatusOr<v1::Run> state = engine_->GetRun(run_id);
    if (!state.ok()) return ToGrpc(state.status());
    if (IsFinal(state->state())) {
      absl::StatusOr<uint64_t> last = engine_->LastSequence(run_id);
      if (last.ok() && *last <= after_sequence) return grpc::Status::OK;
    }
  }

  // Catch up from the run store first, paced by the client (a backlog of
  // any size never passes through the bounded queue), then follow live.
  // The same catch-up runs whenever the live queue is quiet: a run that
  // another process executes reaches this one only through the store, and
  // if that process died the run never ends by itself (it stays unfinished
  // until resumed), so the stream ends with ABORTED "owner gone".
  uint64_t last_sent = after_sequence;
  constexpr int kCatchUpPage = 64;  // at most 64 lines of 64 KiB in memory
  auto catch_up = [&]() -> absl::optional<grpc::Status> {
    while (true) {
      if (StreamOver(context)) return EndedStatus(context, last_sent);
      absl::StatusOr<std::vector<v1::RunEvent>> page =
          engine_->ReadEvents(run_id, last_sent, kCatchUpPage);
      if (!page.ok()) return ToGrpc(page.status());
      if (page->empty()) break;
      for (const v1::RunEvent& event : *page) {
        if (event.sequence() <= last_sent) continue;
        if (!writer->Write(event)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
        last_sent = event.sequence();
        if (EndsRun(event)) return grpc::Status::OK;
      }
    }
    absl::StatusOr<v1::Run> now = engine_->GetRun(run_id);
    if (now.ok() && !IsFinal(now->state()) && now->owner_gone()) {
      return grpc::Status(
          grpc::StatusCode::ABORTED,
          absl::StrCat("run ", run_id,
                       " is interrupted (owner gone): the process executing "
                       "it died; resume it to continue (events up to "
                       "sequence ",
                       last_sent, " were sent)"));
    }
    return absl::nullopt;
  };
  if (absl::optional<grpc::Status> ended = catch_up()) return *ended;

  // The queue outlives the subscription's callbacks (shared ownership).
  auto queue = std::make_shared<EventQueue>(
      options_.watch_queue_events, options_.watch_queue_bytes, watch_budget_);
  // A watcher that falls behind is cancelled, even while its writer is
  // blocked on a client that stopped reading. The action is cleared before
  // the context goes away (after the subscription ends).
  queue->SetOverflowAction([context] { context->TryCancel(); });
  struct ClearAction {
    EventQueue* queue;
    ~ClearAction() { queue->ClearOverflowAction(); }
  } clear_action{queue.get()};
  Subscription subscription(
      *run, (*run)->Subscribe(last_sent, [queue](const v1::RunEvent& event) {
        queue->Push(event);
      }));
  while (true) {
    if (StreamOver(context)) return EndedStatus(context, last_sent);
    v1::RunEvent event;
    switch (queue->Pop(options_.poll, &event)) {
      case EventQueue::PopResult::kTimeout:
        if (absl::optional<grpc::Status> ended = catch_up()) return *ended;
        continue;
      case EventQueue::PopResult::kOverflow:
        return grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("watcher fell behind; resume after sequence ",
                         last_sent));
      case EventQueue::PopResult::kClosed:
        return grpc::Status::OK;
      case EventQueue::PopResult::kEvent:
        break;
    }
    if (event.sequence() <= last_sent) continue;  // never repeat
    if (!writer->Write(event)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    last_sent = event.sequence();
    if (EndsRun(event)) return grpc::Status::OK;
  }
}

}  // namespace kiln::service
