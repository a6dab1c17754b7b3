// The `render` kind: a kustomization inside an artifact -> an artifact of
// rendered manifests, memoized.
#include "engine/render/render.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/tree_walk.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/memoizer.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/render_tree.h"
#include "engine/kinds/workspace.h"

namespace kiln::kinds {
namespace {

namespace fs = std::filesystem;
using pipeline::Field;
using pipeline::FieldUse;
using pipeline::Index;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

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

std::string KustomizationArtifact(const v1::RenderSpec& spec) {
  return spec.kustomization().artifact().empty()
             ? "source"
             : spec.kustomization().artifact();
}

render::RenderOverrides Overrides(const v1::RenderSpec& spec) {
  render::RenderOverrides overrides;
  overrides.namespace_ = spec.namespace_();
  for (const auto& image : spec.images()) overrides.images.push_back(image);
  for (const auto& l : spec.labels()) {
    overrides.labels.emplace_back(l.key(), l.value());
  }
  overrides.name_prefix = spec.name_prefix();
  overrides.name_suffix = spec.name_suffix();
  return overrides;
}

class RenderKind : public Kind {
 public:
  RenderKind() : Kind("render", v1::Task::kRender) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override;

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "render");
    const v1::RenderSpec& r = task.render();
    std::string k = Field(p, "kustomization");
    checks->Require(r.has_kustomization(), p, "kustomization");
    if (r.has_kustomization()) {
      checks->Require(!r.kustomization().artifact().empty(), k, "artifact");
      checks->Require(!r.kustomization().path().empty(), k, "path");
      checks->RelativePath(Field(k, "path"), r.kustomization().path(),
                           "kustomization path");
    }
    for (int i = 0; i < r.images_size(); ++i) {
      checks->Require(!r.images(i).name().empty(), Index(Field(p, "images"), i),
                      "name");
    }
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override;

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    facts.consumed.push_back({KustomizationArtifact(task.render()),
                              "render.kustomization.artifact"});
    facts.produced = task.render().artifact().empty()
                         ? task.name()
                         : task.render().artifact();
    facts.output_keys = {"digest"};
    facts.memoizable = true;
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task&, const pipeline::ExecCapabilities&) const override {
    return absl::nullopt;
  }

  AttemptOutcome Execute(const KindCall& call) const override {
    std::string artifact = KustomizationArtifact(call.task.render());
    auto digest = call.env->ArtifactDigest(artifact, call.finished);
    if (!digest.ok()) return Failed(digest.status());
    // The key hashes the digests of the task's declared inputs; the
    // kustomization's artifact is one, named in the key view so that a
    // changed overlay is a new key.
    v1::Task key_task = call.key_view;
    v1::ArtifactInput* in = key_task.add_inputs();
    in->set_artifact(artifact);
    in->set_path("render.kustomization");
    KindCall keyed{call.task,     key_task,    call.attempt,
                   call.finished, call.cancel, call.env};
    return Memoize(*this, keyed, {{artifact, *digest}},
                   [&](const TaskKey& key, std::string*) {
                     return RenderIn(call, key, *digest);
                   });
  }

 private:
  // Unstashes the kustomization's artifact in a scratch directory, renders
  // it and stashes the manifests.
  AttemptOutcome RenderIn(const KindCall& call, const TaskKey& key,
                          const std::string& digest_text) const;
};

void RenderKind::Decode(Decoder* d, const yaml::Node& node,
                        const std::string& path, v1::Task* task) const {
  using namespace pipeline::internal;  // NOLINT: the field readers
  v1::RenderSpec* out = task->mutable_render();
  Fields f(d, node, path,
           {"kustomization", "namespace", "images", "labels", "name_prefix",
            "name_suffix", "artifact"});
  if (const yaml::Node* n = f.Get("kustomization")) {
    std::string kpath = f.PathOf("kustomization");
    if (n->IsScalar()) {  // a directory in the source artifact
      out->mutable_kustomization()->set_artifact("source");
      d->String(*n, Field(kpath, "path"),
                out->mutable_kustomization()->mutable_path());
      d->Record(kpath, *n);
    } else {
      Fields k(d, *n, kpath, {"artifact", "path"});
      DecodeString(d, k, "artifact",
                   out->mutable_kustomization()->mutable_artifact());
      DecodeString(d, k, "path", out->mutable_kustomization()->mutable_path());
    }
  }
  DecodeString(d, f, "namespace", out->mutable_namespace_());
  if (const yaml::Node* n = f.Get("images");
      n && d->ExpectSequence(*n, f.PathOf("images"))) {
    for (size_t i = 0; i < n->items().size(); ++i) {
      Fields im(d, n->items()[i], Index(f.PathOf("images"), i),
                {"name", "new_name", "new_tag", "digest"});
      v1::ImageOverride* o = out->add_images();
      DecodeString(d, im, "name", o->mutable_name());
      DecodeString(d, im, "new_name", o->mutable_new_name());
      DecodeString(d, im, "new_tag", o->mutable_new_tag());
      DecodeString(d, im, "digest", o->mutable_digest());
    }
  }
  DecodeLabels(d, f, out->mutable_labels());
  DecodeString(d, f, "name_prefix", out->mutable_name_prefix());
  DecodeString(d, f, "name_suffix", out->mutable_name_suffix());
  DecodeString(d, f, "artifact", out->mutable_artifact());
}

void RenderKind::ForEachString(v1::Task* task, const std::string& path,
                               const pipeline::TaskStringVisitor& visit) const {
  const FieldUse lit = FieldUse::kLiteral, sub = FieldUse::kSubstituted;
  std::string p = Field(path, "render");
  v1::RenderSpec* r = task->mutable_render();
  std::string k = Field(p, "kustomization");
  visit(Field(k, "artifact"), r->mutable_kustomization()->mutable_artifact(),
        lit);
  visit(Field(k, "path"), r->mutable_kustomization()->mutable_path(), lit);
  visit(Field(p, "namespace"), r->mutable_namespace_(), sub);
  for (int i = 0; i < r->images_size(); ++i) {
    std::string item = Index(Field(p, "images"), i);
    v1::ImageOverride* o = r->mutable_images(i);
    visit(Field(item, "name"), o->mutable_name(), lit);
    visit(Field(item, "new_name"), o->mutable_new_name(), sub);
    visit(Field(item, "new_tag"), o->mutable_new_tag(), sub);
    visit(Field(item, "digest"), o->mutable_digest(), sub);
  }
  pipeline::VisitLabels(r->mutable_labels(), Field(p, "labels"), visit);
  visit(Field(p, "name_prefix"), r->mutable_name_prefix(), sub);
  visit(Field(p, "name_suffix"), r->mutable_name_suffix(), sub);
  visit(Field(p, "artifact"), r->mutable_artifact(), lit);
}

AttemptOutcome RenderKind::RenderIn(const KindCall& call, const TaskKey& key,
                                    const std::string& digest_text) const {
  const v1::RenderSpec& spec = call.task.render();
  absl::StatusOr<std::string> manifests = RenderInArtifact(
      call, digest_text, spec.kustomization().path(), Overrides(spec));
  if (!manifests.ok()) {
    return Failed(manifests.status(), "",
                  absl::IsUnavailable(manifests.status()));
  }
  AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
  o.cache_key = key.key;
  std::string name =
      spec.artifact().empty() ? call.task.name() : spec.artifact();
  o.outputs[name] = *manifests;
  o.results["digest"] = *manifests;
  return o;
}

}  // namespace

absl::StatusOr<std::string> RenderInArtifact(
    const KindCall& call, const std::string& digest_text,
    const std::string& path, const render::RenderOverrides& overrides) {
  const TaskRunnerContext& ctx = call.env->ctx();
  auto prefixed = [](absl::string_view prefix, const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
  };
  ScopedWorkDir work(call.env, call.task, call.attempt, /*keep=*/false);
  absl::Status s = work.Create();
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("render: ", s.message()));
  }
  const std::string& dir = work.path();
  auto digest = cas::Digest::Parse(digest_text);
  if (!digest.ok()) return digest.status();
  std::string src = dir + "/in";
  s = ctx.artifacts->UnstashAt(*digest, work.fd(), "in", dir, false);
  if (!s.ok()) return prefixed("unstash: ", s);
  // The renderer reads files by path: a symlink in the artifact must not
  // lead it out of the tree (e.g. a generator file -> a host secret).
  s = CheckLinksStayInside(work.fd(), "in");
  if (!s.ok()) return prefixed("render: ", s);
  if (path.find("..") != std::string::npos || absl::StartsWith(path, "/")) {
    return absl::InvalidArgumentError(
        "render: kustomization path must stay inside the artifact");
  }
  auto rendered =
      render::RenderKustomization((fs::path(src) / path).string(), overrides);
  if (!rendered.ok()) {
    std::string msg(rendered.status().message());
    // Paths inside the temporary directory mean nothing to the user.
    msg = absl::StrReplaceAll(msg, {{src + "/", ""}});
    return absl::Status(rendered.status().code(),
                        absl::StrCat("render: ", msg));
  }
  std::string outdir = dir + "/out";
  absl::StatusOr<cas::UniqueFd> out = cas::MakeDirAt(work.fd(), "out");
  if (!out.ok()) return prefixed("render: ", out.status());
  {
    std::ofstream f(outdir + "/manifests.yaml", std::ios::binary);
    f << *rendered;
    if (!f) {
      return absl::InternalError("render: cannot write the rendered manifests");
    }
  }
  auto stashed = ctx.artifacts->Stash(outdir);
  if (!stashed.ok()) return prefixed("render: ", stashed.status());
  return stashed->tree.ToString();
}

const Kind& Render() {
  static const auto* kind = new RenderKind();
  return *kind;
}

}  // namespace kiln::kinds
