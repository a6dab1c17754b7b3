// The engine-side task kinds: stash and unstash (host <-> store) and render
// (a kustomization inside an artifact -> a rendered-manifests artifact).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/cas/digest.h"
#include "engine/render/render.h"
#include "engine/run/outcome.h"
#include "engine/run/task_runner.h"

namespace kiln {

namespace fs = std::filesystem;

AttemptOutcome EngineTaskRunner::Stash(const v1::Task& task) {
  const v1::StashSpec& spec = task.stash();
  std::string from = ResolveHostPath(spec.from());
  auto stashed = ctx_.artifacts->Stash(from);
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
  std::string to = ResolveHostPath(spec.to());
  // Extract next to the target, then swap it in: the target never holds a
  // half-extracted tree.
  std::string tmp = absl::StrCat(to, ".kiln-unstash-", getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(fs::path(to).parent_path(), ec);
  absl::Status s = ctx_.artifacts->Unstash(*digest, tmp);
  if (!s.ok()) {
    fs::remove_all(tmp, ec);
    return Failed(absl::StrCat("unstash ", spec.artifact(), ": ", s.message()));
  }
  std::string old = absl::StrCat(to, ".kiln-old-", getpid());
  bool had_old = fs::symlink_status(to, ec).type() != fs::file_type::not_found;
  if (had_old) fs::rename(to, old, ec);
  fs::rename(tmp, to, ec);
  if (ec) {
    if (had_old) fs::rename(old, to, ec);
    return Failed(absl::StrCat("unstash into ", spec.to(), ": ", ec.message()));
  }
  if (had_old) fs::remove_all(old, ec);
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
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{dir};
  auto digest = cas::Digest::Parse(*digest_text);
  if (!digest.ok()) return Failed(std::string(digest.status().message()));
  std::string src = dir + "/in";
  absl::Status s = ctx_.artifacts->Unstash(*digest, src);
  if (!s.ok()) return Failed(absl::StrCat("unstash: ", s.message()));
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
  fs::create_directories(outdir, ec);
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
