// cli::Client — what the CLI's run verbs ask of kiln, one interface for
// both places a kiln lives: in this process (over a kiln::Engine) or behind
// `kiln serve` (over gRPC, engine/service/client.h). A verb that exists in
// both forms (`kiln runs`, `kiln logs`) is written once against it; the
// server verbs (submit, watch, cancel, retry) use it too.
//
// Both implementations return the same absl::StatusCode for the same
// failure (gRPC codes map 1:1): NotFound for an unknown run,
// InvalidArgument for a pipeline that does not validate (every diagnostic
// in the message).
//
// Thread-safety: an implementation may be used from one thread at a time.
#ifndef KILN_ENGINE_CLI_KILN_CLIENT_H_
#define KILN_ENGINE_CLI_KILN_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "engine/service/client.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln::cli {

// A run's source where the kiln that runs it can read it (UploadSource).
struct UploadedSource {
  std::string dir;             // in-process: the directory itself
  std::string tree_digest;     // over gRPC: the uploaded artifact
  std::string archive_digest;  // and its archive blob
};

// A pipeline file to run, with its directory as the `source` artifact.
struct SubmitSpec {
  std::string yaml;       // the file's text
  std::string filename;   // names it in diagnostics
  UploadedSource source;  // from UploadSource
  v1::Trigger trigger;
  std::string idempotency_key;
  bool keep_going = false;
};

class Client {
 public:
  using EventHandler = std::function<void(const v1::RunEvent&)>;
  virtual ~Client() = default;

  // Makes the directory `dir` available as a run's source: over gRPC it is
  // stashed in the local store and what the server lacks is uploaded.
  virtual absl::StatusOr<UploadedSource> UploadSource(
      const std::string& dir) = 0;
  // Validates and starts a run; returns its id.
  virtual absl::StatusOr<std::string> Submit(const SubmitSpec& spec) = 0;
  // Calls `on_event` with every event after `after_seq` until the run's
  // final RunStateChanged; returns that state.
  virtual absl::StatusOr<v1::RunState> Watch(const std::string& run_id,
                                             uint64_t after_seq,
                                             const EventHandler& on_event) = 0;
  // Submit, then Watch from the first event: `on_run_id` gets the run's id
  // before `on_event` gets any event. Over gRPC this is one call
  // (SubmitAndWatchRun); this default makes the two.
  virtual absl::StatusOr<v1::RunState> SubmitAndWatch(
      const SubmitSpec& spec,
      const std::function<void(const std::string&)>& on_run_id,
      const EventHandler& on_event) {
    absl::StatusOr<std::string> id = Submit(spec);
    if (!id.ok()) return id.status();
    on_run_id(*id);
    return Watch(*id, 0, on_event);
  }
  virtual absl::StatusOr<v1::Run> GetRun(const std::string& run_id) = 0;
  // Recorded runs, newest first, a page at a time.
  virtual absl::StatusOr<store::RunPage> ListRuns(
      const store::RunFilter& filter, int page_size,
      const std::string& page_token) = 0;
  virtual absl::Status Cancel(const std::string& run_id,
                              const std::string& reason) = 0;
  // Approves or rejects a task waiting for approval (Engine::DecideApproval;
  // over gRPC the server's principal for the caller's token decides).
  // Returns the gate's record.
  virtual absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& run_id, const std::string& task, bool approve,
      const std::string& comment) = 0;
  // Starts a new run like `run_id`; returns the new run's id.
  virtual absl::StatusOr<std::string> Retry(const std::string& run_id) = 0;

  // The output artifacts of the run's tasks (only `task`'s unless "").
  // NotFound for an unknown run or task.
  virtual absl::StatusOr<std::vector<ArtifactInfo>> ListArtifacts(
      const std::string& run_id, const std::string& task) = 0;
  // Extracts output `artifact` of `task` into the local directory `dir`
  // (new or empty, unless `replace`: Engine::UnstashArtifactInto), verified
  // against its tree digest. Over gRPC the archive is downloaded into the
  // local store first. NotFound for an unknown run, task or artifact.
  virtual absl::StatusOr<ArtifactInfo> UnstashOutput(
      const std::string& run_id, const std::string& task,
      const std::string& artifact, const std::string& dir, bool replace) = 0;
};

// In-process, over `engine` (not owned; it outlives the client). Submit,
// Cancel and Retry need an engine that runs tasks (not Engine::OpenStore's);
// Watch follows the recorded events, so it also follows a run another
// process on the same store executes.
std::unique_ptr<Client> NewLocalClient(Engine* engine);

// Over gRPC. UploadSource stashes in the local store at `local_store_dir`
// (opened on first use).
std::unique_ptr<Client> NewRemoteClient(
    std::shared_ptr<service::KilnClient> connection,
    std::string local_store_dir);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_KILN_CLIENT_H_
