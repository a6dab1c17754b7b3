#include "engine/deploy/manifest_files.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_walk.h"

namespace kiln::deploy {
namespace {

bool IsManifestFile(const std::string& path) {
  return absl::EndsWith(path, ".yaml") || absl::EndsWith(path, ".yml") ||
         absl::EndsWith(path, ".json");
}

}  // namespace

absl::StatusOr<std::vector<Manifest>> ReadManifests(int dir_fd,
                                                    const std::string& name) {
  absl::StatusOr<cas::UniqueFd> root = cas::OpenDirBeneath(dir_fd, name);
  if (!root.ok()) return root.status();
  absl::StatusOr<std::vector<cas::WalkedEntry>> entries =
      cas::WalkTree(root->get(), "");
  if (!entries.ok()) return entries.status();
  std::sort(entries->begin(), entries->end(),
            [](const cas::WalkedEntry& a, const cas::WalkedEntry& b) {
              return a.path < b.path;
            });
  std::vector<Manifest> out;
  int64_t total = 0;
  for (const cas::WalkedEntry& e : *entries) {
    if (e.type == cas::EntryType::kSymlink) {
      return absl::InvalidArgumentError(
          absl::StrCat("the manifests hold a symlink (", e.path, " -> ",
                       e.link_target, "); a deploy reads regular files only"));
    }
    if (e.type != cas::EntryType::kFile || !IsManifestFile(e.path)) continue;
    total += e.stat.size;
    if (total > kMaxManifestBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the manifests exceed ", kMaxManifestBytes >> 20,
                       " MiB; a deploy reads at most that much"));
    }
    absl::StatusOr<int> fd = cas::OpenFileBeneath(root->get(), e.path);
    if (!fd.ok()) return fd.status();
    cas::UniqueFd owned(*fd);
    std::string text(static_cast<size_t>(e.stat.size) + 1, '\0');
    absl::StatusOr<size_t> n =
        cas::ReadFull(owned.get(), text.data(), text.size(), e.path);
    if (!n.ok()) return n.status();
    if (*n > static_cast<size_t>(e.stat.size)) {
      return absl::FailedPreconditionError(
          absl::StrCat(e.path, " grew while it was read"));
    }
    text.resize(*n);
    absl::StatusOr<std::vector<Manifest>> parsed = ParseManifests(text, e.path);
    if (!parsed.ok()) return parsed.status();
    for (Manifest& m : *parsed) out.push_back(std::move(m));
  }
  if (out.empty()) {
    return absl::FailedPreconditionError(
        "the manifests artifact holds no Kubernetes object (*.yaml, *.yml or "
        "*.json files)");
  }
  return out;
}

}  // namespace kiln::deploy
