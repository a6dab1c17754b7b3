// kiln::Engine's task outputs (engine.h): listing a run's output artifacts,
// reading their bytes, and unstashing them into a directory of the caller.
// The run record names each output (task, name -> tree digest); the store
// says whether it still holds it. Names come from the caller and are only
// ever compared with the recorded ones: they never become paths.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/archive/archive_summary.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "engine/engine.h"

namespace kiln {
namespace {

constexpr size_t kReadChunk = 1 << 20;

// Serves a blob as a ByteSource (its hash is checked at its end).
class BlobByteSource : public archive::ByteSource {
 public:
  explicit BlobByteSource(std::unique_ptr<cas::BlobReader> reader)
      : reader_(std::move(reader)), buf_(kReadChunk, '\0') {}
  absl::StatusOr<absl::string_view> Next() override {
    absl::StatusOr<size_t> n = reader_->Read(buf_.data(), buf_.size());
    if (!n.ok()) return n.status();
    return absl::string_view(buf_.data(), *n);
  }

 private:
  std::unique_ptr<cas::BlobReader> reader_;
  std::string buf_;
};

// The recorded tasks of the run whose outputs are asked for: all, or the
// one named (NotFound if the run has no such task).
absl::StatusOr<std::vector<v1::TaskStatus>> OutputTasks(
    const v1::Run& run, const std::string& task) {
  std::vector<v1::TaskStatus> out;
  for (const v1::TaskStatus& t : run.tasks()) {
    if (task.empty() || t.name() == task) out.push_back(t);
  }
  if (!task.empty() && out.empty()) {
    return absl::NotFoundError(
        absl::StrCat("run ", run.id(), " has no task \"", task, "\""));
  }
  return out;
}

// Describes output `artifact` (recorded as `digest`) of `task` from the
// store: NotFound if the store no longer holds it.
absl::StatusOr<ArtifactInfo> DescribeArtifact(store::Store& store,
                                              const std::string& run_id,
                                              const std::string& task,
                                              const std::string& artifact,
                                              const std::string& digest) {
  absl::StatusOr<cas::Digest> tree = cas::Digest::Parse(digest);
  if (!tree.ok()) {
    return absl::DataLossError(absl::StrCat("run ", run_id, " task ", task,
                                            ": recorded output \"", artifact,
                                            "\" has no valid digest"));
  }
  absl::StatusOr<cas::Digest> archive =
      store.artifacts().VerifiedArchiveOf(*tree);
  if (!archive.ok()) {
    if (archive.status().code() != absl::StatusCode::kNotFound) {
      return archive.status();
    }
    return absl::NotFoundError(absl::StrCat(
        "output \"", artifact, "\" of task \"", task, "\" (run ", run_id, ", ",
        tree->ToString(), ") is no longer in the store (collected by gc?)"));
  }
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> reader =
      store.blobs().OpenBlob(*archive);
  if (!reader.ok()) return reader.status();
  archive->set_size((*reader)->size());
  BlobByteSource source(std::move(*reader));
  absl::StatusOr<archive::ArchiveSummary> summary =
      archive::SummarizeArchive(&source, archive::ExtractLimits());
  if (!summary.ok()) return summary.status();
  ArtifactInfo info;
  info.task = task;
  info.name = artifact;
  info.tree = *tree;
  info.stored = true;
  info.archive = *archive;
  info.files = summary->files;
  info.file_bytes = summary->file_bytes;
  info.directories = summary->directories;
  info.symlinks = summary->symlinks;
  return info;
}

}  // namespace

absl::StatusOr<std::vector<ArtifactInfo>> Engine::ListArtifacts(
    const std::string& run_id, const std::string& task) {
  absl::StatusOr<v1::Run> run = GetRun(run_id);
  if (!run.ok()) return run.status();
  absl::StatusOr<std::vector<v1::TaskStatus>> tasks = OutputTasks(*run, task);
  if (!tasks.ok()) return tasks.status();
  std::vector<ArtifactInfo> out;
  for (const v1::TaskStatus& t : *tasks) {
    // outputs is a map: its order is not stable; names sort.
    std::map<std::string, std::string> sorted(t.outputs().begin(),
                                              t.outputs().end());
    for (const auto& [name, digest] : sorted) {
      absl::StatusOr<ArtifactInfo> info =
          DescribeArtifact(store(), run_id, t.name(), name, digest);
      if (info.ok()) {
        out.push_back(*std::move(info));
        continue;
      }
      if (info.status().code() != absl::StatusCode::kNotFound) {
        return info.status();
      }
      ArtifactInfo gone;  // recorded, no longer stored
      gone.task = t.name();
      gone.name = name;
      absl::StatusOr<cas::Digest> tree = cas::Digest::Parse(digest);
      if (tree.ok()) gone.tree = *tree;
      out.push_back(std::move(gone));
    }
  }
  return out;
}

absl::StatusOr<ArtifactInfo> Engine::GetArtifact(const std::string& run_id,
                                                 const std::string& task,
                                                 const std::string& artifact) {
  absl::StatusOr<v1::Run> run = GetRun(run_id);
  if (!run.ok()) return run.status();
  absl::StatusOr<std::vector<v1::TaskStatus>> tasks = OutputTasks(*run, task);
  if (!tasks.ok()) return tasks.status();
  if (task.empty()) {
    return absl::InvalidArgumentError("GetArtifact needs a task name");
  }
  const v1::TaskStatus& status = tasks->front();
  auto it = status.outputs().find(artifact);
  if (it == status.outputs().end()) {
    std::string known;
    for (const auto& [name, digest] : status.outputs()) {
      absl::StrAppend(&known, known.empty() ? "" : ", ", name);
    }
    return absl::NotFoundError(absl::StrCat(
        "task \"", task, "\" of run ", run_id, " has no output artifact \"",
        artifact, "\"",
        known.empty() ? " (it recorded no outputs)"
                      : absl::StrCat(" (its outputs: ", known, ")")));
  }
  return DescribeArtifact(store(), run_id, task, artifact, it->second);
}

absl::StatusOr<std::unique_ptr<archive::ByteSource>> Engine::OpenArtifact(
    const ArtifactInfo& artifact, bool tar) {
  if (!artifact.stored) {
    return absl::NotFoundError(absl::StrCat("output \"", artifact.name,
                                            "\" is no longer in the store"));
  }
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> reader =
      store().blobs().OpenBlob(artifact.archive);
  if (!reader.ok()) return reader.status();
  std::unique_ptr<archive::ByteSource> source =
      std::make_unique<BlobByteSource>(std::move(*reader));
  if (!tar) return source;
  return archive::DecompressArchive(std::move(source),
                                    archive::ExtractLimits());
}

absl::Status Engine::UnstashArtifactInto(const cas::Digest& tree,
                                         const std::string& dir, bool replace) {
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  const size_t slash = clean.rfind('/');
  const std::string parent = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                          : clean.substr(0, slash);
  const std::string name =
      slash == std::string::npos ? clean : clean.substr(slash + 1);
  if (name.empty() || name == "." || name == ".." || name == "/") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot unstash into \"", dir,
                     "\": name a directory to create or replace"));
  }
  if (absl::Status st = cas::MakeDirs(parent); !st.ok()) return st;
  absl::StatusOr<cas::UniqueFd> parent_fd = cas::OpenTrustedDir(parent);
  if (!parent_fd.ok()) return parent_fd.status();
  return store().artifacts().UnstashAt(tree, parent_fd->get(), name, parent,
                                       replace);
}

absl::Status Engine::UnstashDownloadedArtifact(const cas::Digest& tree,
                                               const cas::Digest& archive,
                                               const std::string& dir,
                                               bool replace) {
  if (absl::Status st = store().artifacts().RegisterArchive(tree, archive);
      !st.ok()) {
    return st;
  }
  absl::Status st = UnstashArtifactInto(tree, dir, replace);
  if (!st.ok() && (st.code() == absl::StatusCode::kDataLoss ||
                   st.code() == absl::StatusCode::kInvalidArgument ||
                   st.code() == absl::StatusCode::kResourceExhausted)) {
    // The archive does not hold `tree`: forget the claim (a no-op when
    // the store already had its own entry for `tree`).
    if (absl::Status forget = store().artifacts().ForgetArchive(tree, archive);
        !forget.ok()) {
      return absl::Status(st.code(),
                          absl::StrCat(st.message(), "; ", forget.message()));
    }
  }
  return st;
}

}  // namespace kiln
