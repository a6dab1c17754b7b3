// The pipeline file a verb works on and its trigger, filled from git: when
// the pipeline lives in a git work tree, the trigger's branch, revision,
// message, author and commit time come from its HEAD (flags still win) and
// a dirty tree is marked; `--rev REV` runs a committed revision instead of
// the work tree (the pipeline and its source are that commit's exact tree,
// exported from the object database into a temporary directory that lives
// as long as the GitSource). `--no-git` turns all of it off.
#ifndef KILN_ENGINE_CLI_GIT_TRIGGER_H_
#define KILN_ENGINE_CLI_GIT_TRIGGER_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/cli/args.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::cli {

class GitSource {
 public:
  GitSource() = default;
  GitSource(GitSource&& other) noexcept;
  GitSource& operator=(GitSource&&) = delete;
  GitSource(const GitSource&) = delete;
  ~GitSource();  // removes the export of --rev

  // The pipeline file to load (inside the export with --rev).
  const std::string& pipeline_file() const { return pipeline_file_; }
  // E.g. "main@1a2b3c4d5e6f (uncommitted changes)"; "" outside git.
  const std::string& note() const { return note_; }
  // Whether the pipeline file is in a git work tree (a changelog exists).
  bool in_work_tree() const { return !root_.empty(); }

  // `trigger` holds what the flags gave (TriggerFromFlags); the fields they
  // left empty are filled from git. Errors: --rev outside a repository, an
  // unknown revision, a pipeline file the revision does not have.
  // Sets trigger->changelog to the messages since `since_revision` (the
  // last successful run's revision; "" or unknown: since the merge base
  // with the default branch). A no-op outside git. Resolve already set it
  // with no since_revision, unless told not to.
  absl::Status FillChangelog(const std::string& since_revision,
                             v1::Trigger* trigger) const;

  enum class Changelog { kFill, kLeave };
  // With Changelog::kLeave the caller fills the changelog itself (`kiln
  // run`, which knows the last successful revision only once the store is
  // open): computing it here too would walk the history twice.
  static absl::StatusOr<GitSource> Resolve(
      const Args& args, const std::string& pipeline_file, v1::Trigger* trigger,
      Changelog changelog = Changelog::kFill);

 private:
  std::string pipeline_file_;
  std::string note_;
  std::string export_dir_;  // "" unless --rev
  std::string root_;        // the work tree; "" outside git
  std::string revision_;    // the commit the trigger names
};

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_GIT_TRIGGER_H_
