// kiln::Engine's store queries for the CLI's offline verbs (engine.h), and
// Engine::OpenStore: an engine over a store with no executor.
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"

namespace kiln {
namespace {

absl::Status NoExecutor() {
  return absl::FailedPreconditionError(
      "this engine was opened for store queries only (Engine::OpenStore): "
      "it has no executor and runs nothing");
}

// The queries and transfers of the facade over one store; nothing runs.
class StoreEngine : public Engine {
 public:
  explicit StoreEngine(std::unique_ptr<store::Store> store)
      : store_(std::move(store)) {}

  absl::StatusOr<std::shared_ptr<RunHandle>> Submit(RunRequest) override {
    return NoExecutor();
  }
  absl::StatusOr<std::shared_ptr<RunHandle>> Resume(
      const std::string&) override {
    return NoExecutor();
  }
  absl::StatusOr<ResumeReport> ResumeUnfinished() override {
    return NoExecutor();
  }
  absl::StatusOr<std::shared_ptr<RunHandle>> Retry(
      const std::string&) override {
    return NoExecutor();
  }
  absl::StatusOr<std::shared_ptr<RunHandle>> Find(const std::string&) override {
    return NoExecutor();
  }
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) override {
    return store_->runs().GetRun(run_id);
  }
  absl::Status Cancel(const std::string&, const std::string&) override {
    return NoExecutor();
  }
  absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string&, const std::string&, bool, const std::string&,
      const std::string&) override {
    return NoExecutor();
  }
  void Shutdown(absl::Duration) override {}
  store::Store& store() const override { return *store_; }

 private:
  const std::unique_ptr<store::Store> store_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::OpenStore(
    const std::string& store_dir) {
  absl::StatusOr<std::unique_ptr<store::Store>> opened =
      store::Store::Open(store_dir);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<Engine>(new StoreEngine(std::move(*opened)));
}

bool Engine::HasRunStore(const std::string& store_dir) {
  return store::Store::HasRunStore(store_dir);
}

absl::StatusOr<std::vector<store::AttemptLog>> Engine::AttemptLogs(
    const std::string& run_id, const std::string& task) {
  absl::StatusOr<std::vector<store::AttemptLog>> logs =
      store().runs().AttemptLogs(run_id, task);
  if (!logs.ok()) return logs.status();
  for (store::AttemptLog& log : *logs) {
    if (!absl::StartsWith(log.path, "/")) {
      log.path = absl::StrCat(store().dir(), "/", log.path);
    }
  }
  return logs;
}

absl::StatusOr<cas::StashResult> Engine::StashDirectory(
    const std::string& dir, const std::vector<std::string>& paths) {
  return store().artifacts().StashPaths(dir, paths);
}

absl::Status Engine::UnstashArtifact(const cas::Digest& tree,
                                     const std::string& dir) {
  return store().artifacts().Unstash(tree, dir);
}

absl::StatusOr<cas::Digest> Engine::PutBlobFile(const std::string& path) {
  return store().blobs().PutFile(path);
}

absl::StatusOr<StoreStats> Engine::GetStoreStats() {
  StoreStats stats;
  absl::StatusOr<std::vector<cas::Digest>> blobs = store().blobs().ListBlobs();
  if (!blobs.ok()) return blobs.status();
  stats.blobs = static_cast<int64_t>(blobs->size());
  for (const cas::Digest& d : *blobs) {
    stats.blob_bytes += std::max<int64_t>(0, d.size());
  }
  auto listed = store().artifacts().ListArtifacts();
  stats.artifacts = listed.ok() ? static_cast<int64_t>(listed->size()) : 0;
  std::string token;
  do {
    absl::StatusOr<store::RunPage> page =
        store().runs().ListRuns(store::RunFilter(), 1000, token);
    if (!page.ok()) return page.status();
    for (const v1::Run& r : page->runs) {
      ++stats.runs_by_state[r.state()];
      ++stats.runs;
    }
    token = page->next_page_token;
  } while (!token.empty());
  return stats;
}

}  // namespace kiln
