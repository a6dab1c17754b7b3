// The engine-side task kinds: stash and unstash (host <-> store) and render
// (a kustomization inside an artifact -> a rendered-manifests artifact).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_walk.h"
#include "engine/render/render.h"
#include "engine/run/outcome.h"
#include "engine/run/task_runner.h"

namespace kiln {

namespace fs = std::filesystem;

namespace {

// Every symlink below `name` in dir_fd has a relative target without "..":
// then each one resolves below its own directory, and so does any chain.
absl::Status CheckLinksStayInside(int dir_fd, const std::string& name) {
  absl::StatusOr<cas::UniqueFd> root = cas::OpenDirBeneath(dir_fd, name);
  if (!root.ok()) return root.status();
  absl::StatusOr<std::vector<cas::WalkedEntry>> entries =
      cas::WalkTree(root->get(), "");
  if (!entries.ok()) return entries.status();
  for (const cas::WalkedEntry& e : *entries) {
    if (e.type != cas::EntryType::kSymlink) continue;
    absl::StatusOr<std::vector<std::string>> parts =
        cas::SplitRelativePath(e.link_target);
    if (!parts.ok() || e.link_target.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "symlink ", e.path, " -> ", e.link_target,
          " may point outside the artifact; rendering follows only symlinks "
          "with a relative target without \"..\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

AttemptOutcome EngineTaskRunner::Stash(const v1::Task& task) {
  const v1::StashSpec& spec = task.stash();
  // `from` resolves beneath the source directory without following a
  // symlink (the source may come from a client); symlinks inside the
  // stashed tree are stored as symlinks, never followed.
  absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(ctx_.source_dir);
  if (!root.ok()) return Failed(std::string(root.status().message()));
  absl::StatusOr<std::vector<std::string>> parts =
      cas::SplitRelativePath(spec.from());
  if (!parts.ok()) {
    return Failed(absl::StrCat("stash from: ", parts.status().message()));
  }
  absl::StatusOr<cas::UniqueFd> from =
      cas::OpenDirBeneath(root->get(), spec.from());
  if (!from.ok()) {
    return Failed(
        absl::StrCat("stash ", spec.from(), ": ", from.status().message()));
  }
  std::string shown = SourcePath(absl::StrJoin(*parts, "/"));
  std::vector<std::string> exclude(spec.exclude().begin(),
                                   spec.exclude().end());
  auto stashed = ctx_.artifacts->StashDirAt(from->get(), shown, shown, exclude);
  if (!stashed.ok()) {
    return Failed(
        absl::StrCat("stash ", spec.from(), ": ", stashed.status().message()));
  }
  AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
  o.outputs[spec.artifact()] = stashed->tree.ToString();
  o.results["digest"] = stashed->tree.ToString();
  return o;
}

AttemptOutcome EngineTaskRunner::Unstash(
    const v1::Task& task, const std::map<std::string, v1::TaskStatus>& fin) {
  const v1::UnstashSpec& spec = task.unstash();
  auto digest_text = ArtifactDigest(spec.artifact(), fin);
  if (!digest_text.ok()) {
    return Failed(std::string(digest_text.status().message()));
  }
  auto digest = cas::Digest::Parse(*digest_text);
  if (!digest.ok()) return Failed(std::string(digest.status().message()));
  // `to` resolves beneath the source directory without following a
  // symlink: a source from a client may hold `out -> /anywhere`.
  absl::StatusOr<std::vector<std::string>> parts =
      cas::SplitRelativePath(spec.to());
  if (!parts.ok()) {
    return Failed(absl::StrCat("unstash to: ", parts.status().message()));
  }
  if (parts->empty()) {
    return Failed(absl::StrCat("unstash to '", spec.to(),
                               "': must name a directory below the source "
                               "directory, not the source directory itself"));
  }
  std::string name = parts->back();
  parts->pop_back();
  std::string parent_rel = absl::StrJoin(*parts, "/");
  absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(ctx_.source_dir);
  if (!root.ok()) return Failed(std::string(root.status().message()));
  absl::StatusOr<cas::UniqueFd> parent =
      cas::MakeDirsBeneath(root->get(), parent_rel, 0755);
  if (!parent.ok()) {
    return Failed(absl::StrCat("unstash into ", spec.to(), ": ",
                               parent.status().message()));
  }
  // Leftovers of a killed engine next to the target.
  cas::SweepDeadTemps(parent->get()).IgnoreError();
  // Extracted next to the target, then swapped in: the target never holds
  // a half-extracted tree, and nothing is left behind on failure.
  absl::Status s = ctx_.artifacts->UnstashAt(*digest, parent->get(), name,
                                             SourcePath(parent_rel), true);
  if (!s.ok()) {
    return Failed(absl::StrCat("unstash ", spec.artifact(), " into ", spec.to(),
                               ": ", s.message()));
  }
  AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
  o.results["digest"] = *digest_text;
  return o;
}

AttemptOutcome EngineTaskRunner::Render(
    const v1::Task& task, const v1::Task& key_view, int attempt,
    const std::map<std::string, v1::TaskStatus>& fin) {
  const v1::RenderSpec& spec = task.render();
  std::string artifact = spec.kustomization().artifact().empty()
                             ? "source"
                             : spec.kustomization().artifact();
  auto digest_text = ArtifactDigest(artifact, fin);
  if (!digest_text.ok()) {
    return Failed(std::string(digest_text.status().message()));
  }
  TaskKeyInputs key_in;
  key_in.task = &key_view;
  key_in.input_digests = {{artifact, *digest_text}};
  key_in.platform = PlatformFor(task);
  TaskKey key = ComputeTaskKey(key_in);
  bool cacheable = !task.has_cache() || task.cache();
  if (cacheable) {
    if (auto hit = CachedOutcome(key.key)) return *hit;
  }
  std::string dir = WorkDir(task, attempt);
  std::string work_name = dir.substr(dir.rfind('/') + 1);
  absl::StatusOr<cas::UniqueFd> parent = OpenWorkParent();
  if (!parent.ok()) {
    return Failed(absl::StrCat("render: ", parent.status().message()), true);
  }
  cas::RemoveTreeAt(parent->get(), work_name).IgnoreError();
  struct Cleanup {
    int parent_fd;
    std::string name;
    ~Cleanup() { cas::RemoveTreeAt(parent_fd, name).IgnoreError(); }
  } cleanup{parent->get(), work_name};
  absl::StatusOr<cas::UniqueFd> work = cas::MakeDirAt(parent->get(), work_name);
  if (!work.ok()) {
    return Failed(absl::StrCat("render: ", work.status().message()), true);
  }
  auto digest = cas::Digest::Parse(*digest_text);
  if (!digest.ok()) return Failed(std::string(digest.status().message()));
  std::string src = dir + "/in";
  absl::Status s =
      ctx_.artifacts->UnstashAt(*digest, work->get(), "in", dir, false);
  if (!s.ok()) return Failed(absl::StrCat("unstash: ", s.message()));
  // The renderer reads files by path: a symlink in the artifact must not
  // lead it out of the tree (e.g. a generator file -> a host secret).
  s = CheckLinksStayInside(work->get(), "in");
  if (!s.ok()) return Failed(absl::StrCat("render: ", s.message()));
  render::RenderOverrides overrides;
  overrides.namespace_ = spec.namespace_();
  for (const auto& image : spec.images()) overrides.images.push_back(image);
  for (const auto& l : spec.labels()) {
    overrides.labels.emplace_back(l.key(), l.value());
  }
  overrides.name_prefix = spec.name_prefix();
  overrides.name_suffix = spec.name_suffix();
  std::string path = spec.kustomization().path();
  if (path.find("..") != std::string::npos || absl::StartsWith(path, "/")) {
    return Failed("render: kustomization path must stay inside the artifact");
  }
  auto rendered =
      render::RenderKustomization((fs::path(src) / path).string(), overrides);
  if (!rendered.ok()) {
    std::string msg(rendered.status().message());
    // Paths inside the temporary directory mean nothing to the user.
    msg = absl::StrReplaceAll(msg, {{src + "/", ""}});
    return Failed(absl::StrCat("render: ", msg));
  }
  std::string outdir = dir + "/out";
  absl::StatusOr<cas::UniqueFd> out = cas::MakeDirAt(work->get(), "out");
  if (!out.ok())
    return Failed(absl::StrCat("render: ", out.status().message()));
  {
    std::ofstream f(outdir + "/manifests.yaml", std::ios::binary);
    f << *rendered;
    if (!f) return Failed("render: cannot write the rendered manifests");
  }
  auto stashed = ctx_.artifacts->Stash(outdir);
  if (!stashed.ok()) {
    return Failed(absl::StrCat("render: ", stashed.status().message()));
  }
  AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
  o.cache_key = key.key;
  std::string name = spec.artifact().empty() ? task.name() : spec.artifact();
  o.outputs[name] = stashed->tree.ToString();
  o.results["digest"] = stashed->tree.ToString();
  if (cacheable) Record(key.key, task, key.components, o, "");
  return o;
}

}  // namespace kiln
