// cli::Client in-process, over a kiln::Engine (kiln_client.h).
#include <utility>

#include "absl/time/time.h"
#include "engine/cli/kiln_client.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/loader.h"

namespace kiln::cli {
namespace {

bool IsFinal(v1::RunState state) {
  return state != v1::RUN_STATE_UNSPECIFIED && state != v1::RUN_QUEUED &&
         state != v1::RUN_RUNNING;
}

class LocalClient : public Client {
 public:
  explicit LocalClient(Engine* engine) : engine_(engine) {}

  absl::StatusOr<UploadedSource> UploadSource(const std::string& dir) override {
    UploadedSource source;
    source.dir = dir;
    return source;
  }

  absl::StatusOr<std::string> Submit(const SubmitSpec& spec) override {
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineText(spec.yaml, spec.filename);
    if (!loaded.ok()) return pipeline::DiagnosticsToStatus(loaded.errors);
    RunRequest request;
    request.pipeline = std::move(loaded.pipeline);
    request.source_map = loaded.source_map;
    request.validation = loaded.validation;
    request.source_dir = spec.source.dir;
    request.trigger = spec.trigger;
    request.idempotency_key = spec.idempotency_key;
    request.keep_going = spec.keep_going;
    absl::StatusOr<std::shared_ptr<RunHandle>> run =
        engine_->Submit(std::move(request));
    if (!run.ok()) return run.status();
    return (*run)->id();
  }

  // Follows the recorded events, so a run executed by another process on
  // the same store is followed too; one whose owner died ends the watch.
  absl::StatusOr<v1::RunState> Watch(const std::string& run_id,
                                     uint64_t after_seq,
                                     const EventHandler& on_event) override {
    if (absl::StatusOr<v1::Run> run = engine_->GetRun(run_id); !run.ok()) {
      return run.status();
    }
    uint64_t seq = after_seq;
    while (true) {
      absl::StatusOr<std::vector<v1::RunEvent>> events =
          engine_->ReadEvents(run_id, seq, 1000);
      if (!events.ok()) return events.status();
      for (const v1::RunEvent& e : *events) {
        seq = e.sequence();
        on_event(e);
        if (e.has_run_state() && IsFinal(e.run_state().state())) {
          return e.run_state().state();
        }
      }
      if (!events->empty()) continue;
      absl::StatusOr<uint64_t> last =
          engine_->WaitForEvents(run_id, seq, absl::Seconds(1));
      if (!last.ok()) return last.status();
      if (*last > seq) continue;
      absl::StatusOr<v1::Run> run = engine_->GetRun(run_id);
      if (!run.ok()) return run.status();
      if (run->owner_gone()) {
        return absl::UnavailableError(
            "the run is interrupted (owner gone): resume it with "
            "kiln run --resume");
      }
    }
  }

  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) override {
    return engine_->GetRun(run_id);
  }

  absl::StatusOr<store::RunPage> ListRuns(
      const store::RunFilter& filter, int page_size,
      const std::string& page_token) override {
    return engine_->ListRuns(filter, page_size, page_token);
  }

  absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& run_id, const std::string& task, bool approve,
      const std::string& comment) override {
    // Only runs this process executes can be decided; a local `kiln run`
    // decides its gates in advance with --approve.
    return engine_->DecideApproval(run_id, task, approve, "local", comment);
  }

  absl::Status Cancel(const std::string& run_id,
                      const std::string& reason) override {
    return engine_->Cancel(run_id, reason);
  }

  absl::StatusOr<std::string> Retry(const std::string& run_id) override {
    absl::StatusOr<std::shared_ptr<RunHandle>> run = engine_->Retry(run_id);
    if (!run.ok()) return run.status();
    return (*run)->id();
  }
  absl::StatusOr<std::vector<ArtifactInfo>> ListArtifacts(
      const std::string& run_id, const std::string& task) override {
    return engine_->ListArtifacts(run_id, task);
  }

  absl::StatusOr<ArtifactInfo> UnstashOutput(const std::string& run_id,
                                             const std::string& task,
                                             const std::string& artifact,
                                             const std::string& dir,
                                             bool replace) override {
    absl::StatusOr<ArtifactInfo> info =
        engine_->GetArtifact(run_id, task, artifact);
    if (!info.ok()) return info.status();
    absl::Status st = engine_->UnstashArtifactInto(info->tree, dir, replace);
    if (!st.ok()) return st;
    return info;
  }

 private:
  Engine* const engine_;
};

}  // namespace

std::unique_ptr<Client> NewLocalClient(Engine* engine) {
  return std::make_unique<LocalClient>(engine);
}

}  // namespace kiln::cli
