// kiln::Engine's queries and transfers over its store (engine.h): what the
// service and the CLI use instead of opening the stores themselves.
#include <stdlib.h>

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"
#include "engine/engine.h"

namespace kiln {

absl::StatusOr<store::RunPage> Engine::ListRuns(const store::RunFilter& filter,
                                                int page_size,
                                                const std::string& page_token) {
  return store().runs().ListRuns(filter, page_size, page_token);
}

absl::StatusOr<std::string> Engine::LastSucceededRevision(
    const std::string& pipeline_name, const std::string& branch) {
  return store().runs().LastSucceededRevision(pipeline_name, branch, 1000);
}

absl::StatusOr<std::vector<v1::RunEvent>> Engine::ReadEvents(
    const std::string& run_id, uint64_t after_seq, int limit) {
  return store().runs().ReadEvents(run_id, after_seq, limit);
}

absl::StatusOr<uint64_t> Engine::WaitForEvents(const std::string& run_id,
                                               uint64_t after_seq,
                                               absl::Duration timeout) {
  return store().runs().WaitForEvents(run_id, after_seq, timeout);
}

absl::StatusOr<uint64_t> Engine::LastSequence(const std::string& run_id) {
  return store().runs().LastSequence(run_id);
}

absl::StatusOr<v1::Pipeline> Engine::GetPipeline(const std::string& run_id) {
  return store().runs().GetPipeline(run_id);
}

absl::StatusOr<std::string> Engine::GetSourceDir(const std::string& run_id) {
  return store().runs().GetSourceDir(run_id);
}

std::string Engine::AttemptLogPath(const std::string& run_id,
                                   const std::string& task,
                                   uint32_t attempt) const {
  return store().AttemptLogPath(run_id, task, attempt);
}

bool Engine::HasBlob(const cas::Digest& digest) const {
  return store().blobs().Has(digest);
}

std::vector<cas::Digest> Engine::FindMissingBlobs(
    const std::vector<cas::Digest>& digests) const {
  return store().blobs().FindMissing(digests);
}

absl::StatusOr<std::unique_ptr<cas::BlobWriter>> Engine::NewBlobWriter() const {
  return store().blobs().NewWriter();
}

absl::StatusOr<std::unique_ptr<cas::BlobReader>> Engine::OpenBlob(
    const cas::Digest& digest) const {
  return store().blobs().OpenBlob(digest);
}

absl::StatusOr<std::string> Engine::PutSource(
    const cas::Digest& tree, const cas::Digest& archive,
    const archive::ExtractLimits& limits) {
  const store::Store& st = store();
  if (!st.blobs().Has(archive)) {
    return absl::FailedPreconditionError(
        absl::StrCat("source archive ", archive.ToString(),
                     " is not uploaded (UploadBlob it first)"));
  }
  if (absl::Status s = st.artifacts().RegisterArchive(tree, archive); !s.ok()) {
    return s;
  }
  // A fresh directory per run: `unstash` tasks write into their source.
  std::string parent = st.SourcesDir();
  if (absl::Status s = cas::MakeDirs(parent); !s.ok()) return s;
  std::string dir =
      absl::StrCat(parent, "/", tree.Hex().substr(0, 16), "-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", dir, " failed"));
  }
  if (absl::Status s = st.artifacts().Unstash(tree, dir, limits); !s.ok()) {
    (void)cas::RemoveTree(dir);
    // A forged claim must not stay registered for this tree.
    (void)st.artifacts().ForgetArchive(tree, archive);
    return s;
  }
  return dir;
}

absl::StatusOr<gc::GcReport> Engine::CollectGarbage(
    const gc::GcOptions& options) {
  return gc::CollectGarbage(store(), options);
}

}  // namespace kiln
