#include "engine/cli/git_trigger.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/remove_tree.h"
#include "engine/git/git_source.h"

namespace kiln::cli {
namespace {

std::string Absolute(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

void Fill(const git::Commit& commit, const std::string& branch, bool dirty,
          v1::Trigger* t) {
  if (t->branch().empty()) t->set_branch(branch);
  if (t->commit_message().empty()) t->set_commit_message(commit.message);
  if (t->revision().empty()) t->set_revision(commit.revision);
  t->set_author(commit.author);
  t->set_commit_time(commit.time);
  t->set_dirty(dirty);
}

}  // namespace

GitSource::GitSource(GitSource&& other) noexcept
    : pipeline_file_(std::move(other.pipeline_file_)),
      note_(std::move(other.note_)),
      export_dir_(std::exchange(other.export_dir_, "")),
      root_(std::move(other.root_)),
      revision_(std::move(other.revision_)) {}

absl::Status GitSource::FillChangelog(const std::string& since_revision,
                                      v1::Trigger* trigger) const {
  if (root_.empty()) return absl::OkStatus();
  auto log = git::Changelog(root_, revision_, since_revision,
                            {"main", "master", "origin/HEAD"});
  if (!log.ok()) return log.status();
  trigger->clear_changelog();
  for (std::string& m : *log) trigger->add_changelog(std::move(m));
  return absl::OkStatus();
}

GitSource::~GitSource() {
  if (export_dir_.empty()) return;
  if (absl::Status s = RemoveTreeAt(AT_FDCWD, export_dir_); !s.ok()) {
    std::fprintf(stderr, "kiln: could not remove the export of --rev: %s\n",
                 std::string(s.message()).c_str());
  }
}

absl::StatusOr<GitSource> GitSource::Resolve(const Args& args,
                                             const std::string& pipeline_file,
                                             v1::Trigger* trigger,
                                             Changelog changelog) {
  GitSource out;
  out.pipeline_file_ = pipeline_file;
  std::string rev = args.Get("rev");
  if (args.Has("no-git")) {
    if (!rev.empty()) {
      return absl::InvalidArgumentError("--rev and --no-git do not mix");
    }
    return out;
  }
  std::string file = Absolute(pipeline_file);
  std::string dir = std::filesystem::path(file).parent_path().string();
  auto head = git::DiscoverWorkTree(dir);
  if (!head.ok()) {
    return absl::Status(
        head.status().code(),
        absl::StrCat(head.status().message(), " (--no-git runs without git)"));
  }
  if (!head->has_value()) {
    if (!rev.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rev: '", dir, "' is not inside a git work tree"));
    }
    return out;
  }
  const git::WorkTreeHead& h = **head;
  out.root_ = h.root;
  if (rev.empty()) {
    Fill(h.commit, h.branch, h.dirty, trigger);
    out.revision_ = h.commit.revision;
    if (changelog == Changelog::kFill) {
      if (absl::Status s = out.FillChangelog("", trigger); !s.ok()) return s;
    }
    out.note_ = absl::StrCat(h.branch.empty() ? "detached" : h.branch, "@",
                             h.commit.revision.substr(0, 12),
                             h.dirty ? " (uncommitted changes)" : "");
    return out;
  }
  auto commit = git::ResolveCommit(h.root, rev);
  if (!commit.ok()) return commit.status();
  std::string root = Absolute(h.root);
  if (!absl::StartsWith(file, root + "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rev: '", pipeline_file,
                     "' is not inside the work tree '", root, "'"));
  }
  std::string relative = file.substr(root.size() + 1);
  std::string templ =
      (std::filesystem::temp_directory_path() / "kiln-rev-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError("--rev: cannot make a temporary directory");
  }
  out.export_dir_ = templ;
  if (absl::Status s = git::ExportTree(h.root, commit->revision, templ);
      !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("--rev ", rev, ": ", s.message()));
  }
  out.pipeline_file_ = absl::StrCat(templ, "/", relative);
  struct stat st;
  if (lstat(out.pipeline_file_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("--rev ", rev, ": '", relative,
                                            "' is not a file in that commit"));
  }
  Fill(*commit, commit->branch, false, trigger);
  out.revision_ = commit->revision;
  if (changelog == Changelog::kFill) {
    if (absl::Status s = out.FillChangelog("", trigger); !s.ok()) return s;
  }
  out.note_ = absl::StrCat(commit->branch.empty() ? rev : commit->branch, "@",
                           commit->revision.substr(0, 12), " (committed tree)");
  return out;
}

}  // namespace kiln::cli
