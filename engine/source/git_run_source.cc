#include "engine/source/git_run_source.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_walk.h"

namespace kiln::source {

absl::StatusOr<GitRunSource> CheckoutGitSource(GitFetcher* fetcher,
                                               const std::string& store_dir,
                                               const GitSourceSpec& spec) {
  if (fetcher == nullptr) {
    return absl::FailedPreconditionError(
        "this server does not fetch git sources");
  }
  const std::string parent = absl::StrCat(store_dir, "/sources");
  if (absl::Status s = cas::MakeDirs(parent); !s.ok()) return s;
  GitRunSource out;
  out.dir = absl::StrCat(parent, "/git-XXXXXX");
  if (mkdtemp(out.dir.data()) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat("mkdtemp ", out.dir));
  }
  absl::StatusOr<CheckedOutSource> checkout = fetcher->Checkout(spec, out.dir);
  if (!checkout.ok()) {
    (void)cas::RemoveTree(out.dir);
    return checkout.status();
  }
  out.checkout = std::move(*checkout);
  return out;
}

void FillTriggerFromGit(const CheckedOutSource& checkout,
                        v1::Trigger* trigger) {
  if (trigger->branch().empty()) trigger->set_branch(checkout.branch);
  if (trigger->revision().empty()) {
    trigger->set_revision(checkout.commit.revision);
  }
  if (trigger->commit_message().empty()) {
    trigger->set_commit_message(checkout.commit.message);
  }
  if (trigger->author().empty()) trigger->set_author(checkout.commit.author);
  if (trigger->commit_time() == 0) {
    trigger->set_commit_time(checkout.commit.time);
  }
  if (trigger->changelog().empty()) {
    for (const std::string& m : checkout.changelog) trigger->add_changelog(m);
  }
}

absl::StatusOr<std::string> ReadPipelineFromTree(const std::string& dir,
                                                 const std::string& path,
                                                 const std::string& revision,
                                                 size_t max_bytes) {
  if (absl::StatusOr<std::vector<std::string>> parts =
          cas::SplitRelativePath(path);
      !parts.ok() || parts->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pipeline path '", path, "' must be relative, without '..'"));
  }
  absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(dir);
  if (!root.ok()) return root.status();
  absl::StatusOr<int> fd = cas::OpenFileBeneath(root->get(), path);
  if (!fd.ok()) {
    return absl::Status(
        absl::IsNotFound(fd.status()) ? absl::StatusCode::kNotFound
                                      : absl::StatusCode::kInvalidArgument,
        absl::StrCat(
            "revision ", revision, " has no pipeline file '", path,
            "' (a regular file, not through a link): ", fd.status().message()));
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(*fd);
      return ErrnoStatus(err, absl::StrCat("reading '", path, "'"));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      close(*fd);
      return absl::ResourceExhaustedError(
          absl::StrCat("pipeline file '", path, "' at ", revision, " is over ",
                       max_bytes, " bytes"));
    }
  }
  close(*fd);
  return text;
}

}  // namespace kiln::source
