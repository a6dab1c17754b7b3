// The `containerize` kind: an OCI image from a base and artifact layers
// (engine/oci/builder.h), stored as an OCI image layout artifact, memoized.
//
// Bases (docs/containerize.md):
//   scratch                         no base
//   oci-layout:ARTIFACT[:TAG|@DIGEST]  an OCI layout artifact, e.g. another
//                                   containerize task's output
//   anything else                   a registry reference, through the
//                                   registry access the engine configures
// The key covers the base's manifest digest (a registry tag is resolved
// first; a layout artifact enters by its tree digest), every layer
// artifact's tree digest, the config and the mtime used.
//
// Outputs: the layout artifact; `digest` (the manifest digest) and `image`
// (PUSH@DIGEST when pushed, else oci-layout:ARTIFACT@DIGEST, usable as
// another containerize task's base).
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/kinds/kind.h"
#include "engine/kinds/kinds.h"
#include "engine/kinds/memoizer.h"
#include "engine/kinds/outcome.h"
#include "engine/kinds/workspace.h"
#include "engine/oci/builder.h"
#include "engine/oci/layout.h"
#include "engine/oci/registry/auth.h"
#include "engine/oci/registry/push.h"
#include "engine/oci/registry/registry.h"
#include "engine/oci/source.h"
#include "re2/re2.h"

namespace kiln::kinds {
namespace {

using pipeline::Field;
using pipeline::FieldUse;
using pipeline::Index;
using pipeline::internal::Decoder;
using pipeline::internal::Fields;

constexpr char kLayoutPrefix[] = "oci-layout:";

// The registry access of one attempt: the engine's (null when none is
// configured: registry bases and pushes then fail clearly), or with `auth:`
// a client like it that also holds those credentials for the registries of
// `push` and of a registry `base`. The password must be a secret's value.
absl::StatusOr<std::shared_ptr<oci::ImageSources>> RegistryAccess(
    const KindCall& call) {
  oci::ImageSources* engine = call.env->ctx().image_sources;
  std::shared_ptr<oci::ImageSources> shared(engine, [](oci::ImageSources*) {});
  const v1::ContainerizeSpec& spec = call.task.containerize();
  if (!spec.has_auth() || engine == nullptr) return shared;
  auto* registry = dynamic_cast<oci::registry::RegistrySources*>(engine);
  if (registry == nullptr) {
    return absl::FailedPreconditionError(
        "containerize.auth: this kiln's registry access takes no credentials");
  }
  bool secret = false;
  for (const auto& [name, value] : call.env->ctx().secrets) {
    secret = secret || (!value.empty() && value == spec.auth().password());
  }
  if (!secret) {
    return absl::InvalidArgumentError(
        "containerize.auth.password: the value is not a secret param's (write "
        "${params.NAME} with NAME declared secret: true)");
  }
  oci::registry::RegistryOptions options = registry->options();
  for (const std::string& ref : {spec.push(), spec.base()}) {
    auto parsed = oci::registry::ParseReference(ref);
    if (ref.empty() || !parsed.ok()) continue;
    oci::registry::Credentials& c =
        options
            .credentials[oci::registry::NormalizeRegistryKey(parsed->registry)];
    c.username = spec.auth().username();
    c.password = spec.auth().password();
  }
  auto own = oci::registry::RegistrySources::Create(std::move(options));
  if (!own.ok()) return own.status();
  return std::shared_ptr<oci::ImageSources>(std::move(*own));
}

// A base image reference, parsed.
struct BaseRef {
  enum Kind { kScratch, kLayout, kRegistry } kind = kScratch;
  std::string artifact;       // kLayout
  std::string tag_or_digest;  // kLayout: "" (the only image), tag, digest
  std::string reference;      // kRegistry
};

absl::StatusOr<BaseRef> ParseBase(const std::string& base) {
  BaseRef ref;
  if (base == "scratch") return ref;
  if (absl::StartsWith(base, kLayoutPrefix)) {
    ref.kind = BaseRef::kLayout;
    std::string rest = base.substr(sizeof(kLayoutPrefix) - 1);
    size_t at = rest.find_first_of("@:");
    ref.artifact = rest.substr(0, at);
    if (at != std::string::npos) ref.tag_or_digest = rest.substr(at + 1);
    if (ref.artifact.empty() ||
        (at != std::string::npos && ref.tag_or_digest.empty())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "base '", base, "' is not oci-layout:ARTIFACT[:TAG|@DIGEST]"));
    }
    if (at != std::string::npos && rest[at] == '@' &&
        !cas::Digest::Parse(ref.tag_or_digest).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("base '", base, "': '", ref.tag_or_digest,
                       "' is not a sha256 digest"));
    }
    return ref;
  }
  ref.kind = BaseRef::kRegistry;
  ref.reference = base;
  return ref;
}

// "host:5000/repo:tag" or "repo@sha256:…" -> "host:5000/repo".
std::string StripTag(const std::string& reference) {
  std::string name = reference.substr(0, reference.find('@'));
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string::npos &&
      (slash == std::string::npos || colon > slash)) {
    name.resize(colon);
  }
  return name;
}

absl::StatusOr<int64_t> ParseEpoch(const std::string& text,
                                   const std::string& what) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < 0 || v > (int64_t{1} << 33) - 1 ||
      text[0] == '+') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", text,
                     "' is not a number of seconds since the epoch (>= 0)"));
  }
  return v;
}

absl::StatusOr<int> ParseMode(const std::string& text) {
  if (text.empty()) return -1;
  int mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7' || mode > 0777) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer mode '", text, "' is not an octal mode within 0..0777"));
    }
    mode = mode * 8 + (c - '0');
  }
  if (mode > 0777) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer mode '", text,
                     "' is not within 0..0777 (setuid, setgid and sticky "
                     "bits are not allowed)"));
  }
  return mode;
}

// The layer mtime: the task's source_date_epoch, else the pipeline's
// SOURCE_DATE_EPOCH param, else the trigger's commit time (git), else 0.
absl::StatusOr<int64_t> Epoch(const KindCall& call) {
  const v1::ContainerizeSpec& c = call.task.containerize();
  if (!c.source_date_epoch().empty()) {
    return ParseEpoch(c.source_date_epoch(), "containerize.source_date_epoch");
  }
  const auto& params = call.env->ctx().substitution.params;
  auto it = params.find("SOURCE_DATE_EPOCH");
  if (it != params.end() && !it->second.empty()) {
    return ParseEpoch(it->second, "param SOURCE_DATE_EPOCH");
  }
  return std::max<int64_t>(0,
                           call.env->ctx().substitution.trigger.commit_time());
}

std::string ProducedArtifact(const v1::Task& task) {
  return task.containerize().artifact().empty()
             ? task.name()
             : task.containerize().artifact();
}

// Unstashes the layout artifact `tree` into `name` of dir_fd and opens it.
absl::StatusOr<std::unique_ptr<oci::LayoutSource>> OpenLayoutArtifact(
    const KindCall& call, const std::string& tree, int dir_fd,
    const std::string& name, const std::string& shown_parent,
    const std::string& display) {
  absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(tree);
  if (!digest.ok()) return digest.status();
  absl::StatusOr<cas::UniqueFd> dir = cas::MakeDirAt(dir_fd, name);
  if (!dir.ok()) return dir.status();
  dir = cas::UniqueFd();
  absl::Status s = call.env->ctx().artifacts->UnstashAt(
      *digest, dir_fd, name, shown_parent, /*replace=*/false);
  if (!s.ok()) return s;
  absl::StatusOr<cas::UniqueFd> root = cas::OpenDirBeneath(dir_fd, name);
  if (!root.ok()) return root.status();
  return oci::LayoutSource::Open(root->get(), display);
}

// Pushes image `manifest_digest` of the layout artifact `layout_tree` to
// `target` (the task's push:, "host[:port]/repo[:tag]") with the registry
// client: when the target already names the image nothing is sent; else
// blobs the registry has are skipped (HEAD). Returns the manifest digest.
absl::StatusOr<std::string> PushLayout(const KindCall& call,
                                       const std::string& layout_tree,
                                       const std::string& manifest_digest,
                                       const std::string& target) {
  absl::StatusOr<std::shared_ptr<oci::ImageSources>> access =
      RegistryAccess(call);
  if (!access.ok()) return access.status();
  auto* registry = dynamic_cast<oci::registry::RegistrySources*>(access->get());
  if (registry == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot push to '", target,
                     "': no registry client is configured for this kiln"));
  }
  // A cache hit whose image is already there (the usual rerun): one
  // manifest GET, without extracting the layout.
  if (oci::registry::AlreadyPushed(*registry, target, manifest_digest)) {
    return manifest_digest;
  }
  ScopedWorkDir work(call.env, call.task, call.attempt, /*keep=*/false);
  if (absl::Status s = work.Create(); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<oci::LayoutSource>> layout =
      OpenLayoutArtifact(call, layout_tree, work.fd(), "push", work.path(),
                         "the image to push");
  if (!layout.ok()) return layout.status();
  absl::StatusOr<oci::FetchedManifest> manifest =
      (*layout)->GetManifest(manifest_digest);
  if (!manifest.ok()) return manifest.status();
  absl::StatusOr<cas::UniqueFd> root = cas::OpenDirBeneath(work.fd(), "push");
  if (!root.ok()) return root.status();
  std::unique_ptr<oci::registry::BlobProvider> blobs =
      oci::registry::BlobsFromLayout(root->get());
  absl::StatusOr<std::string> pushed = oci::registry::PushImage(
      *registry, target, manifest->bytes, manifest->media_type, *blobs);
  if (!pushed.ok()) return pushed.status();
  if (*pushed != manifest_digest) {
    return absl::DataLossError(absl::StrCat("the registry stored ", *pushed,
                                            " for image ", manifest_digest));
  }
  return pushed;
}

// The manifest digest a layout base names: its tag or digest, or, without
// either, its only image (or the platform's entry of its index).
absl::StatusOr<std::string> ResolveLayoutBase(oci::LayoutSource& source,
                                              const std::string& tag_or_digest,
                                              const oci::Platform& platform) {
  std::string ask = tag_or_digest;
  if (ask.empty()) {
    absl::StatusOr<oci::FetchedManifest> top = source.GetManifest("");
    if (!top.ok()) return top.status();
    absl::StatusOr<oci::Index> index = oci::ParseIndex(top->bytes);
    if (!index.ok()) return index.status();
    if (index->manifests.size() == 1) ask = index->manifests[0].digest;
  }
  absl::StatusOr<oci::ResolvedImage> resolved =
      oci::ResolveImage(source, ask, platform);
  if (!resolved.ok()) return resolved.status();
  return resolved->manifest.digest;
}

class ContainerizeKind : public Kind {
 public:
  ContainerizeKind() : Kind("containerize", v1::Task::kContainerize) {}

  void Decode(Decoder* d, const yaml::Node& node, const std::string& path,
              v1::Task* task) const override {
    using namespace pipeline::internal;  // NOLINT: the field readers
    v1::ContainerizeSpec* out = task->mutable_containerize();
    Fields f(d, node, path,
             {"base", "layers", "entrypoint", "cmd", "env", "labels", "workdir",
              "user", "push", "artifact", "platform", "expose",
              "source_date_epoch", "compression", "auth"});
    DecodeString(d, f, "base", out->mutable_base());
    if (const yaml::Node* n = f.Get("layers");
        n && d->ExpectSequence(*n, f.PathOf("layers"))) {
      for (size_t i = 0; i < n->items().size(); ++i) {
        Fields l(d, n->items()[i], Index(f.PathOf("layers"), i),
                 {"artifact", "to", "mode", "uid", "gid"});
        v1::ImageLayer* layer = out->add_layers();
        DecodeString(d, l, "artifact", layer->mutable_artifact());
        DecodeString(d, l, "to", layer->mutable_to());
        DecodeString(d, l, "mode", layer->mutable_mode());
        uint64_t id = 0;
        if (const yaml::Node* u = l.Get("uid");
            u && d->Uint(*u, l.PathOf("uid"), 0xFFFFFFFEu, &id)) {
          layer->set_uid(static_cast<uint32_t>(id));
        }
        if (const yaml::Node* g = l.Get("gid");
            g && d->Uint(*g, l.PathOf("gid"), 0xFFFFFFFEu, &id)) {
          layer->set_gid(static_cast<uint32_t>(id));
        }
      }
    }
    DecodeList(d, f, "entrypoint", out->mutable_entrypoint());
    DecodeList(d, f, "cmd", out->mutable_cmd());
    DecodeEnv(d, f, out->mutable_env());
    DecodeLabels(d, f, out->mutable_labels());
    DecodeString(d, f, "workdir", out->mutable_workdir());
    DecodeString(d, f, "user", out->mutable_user());
    DecodeString(d, f, "push", out->mutable_push());
    DecodeString(d, f, "artifact", out->mutable_artifact());
    DecodeString(d, f, "platform", out->mutable_platform());
    DecodeList(d, f, "expose", out->mutable_expose());
    DecodeString(d, f, "source_date_epoch", out->mutable_source_date_epoch());
    DecodeString(d, f, "compression", out->mutable_compression());
    if (const yaml::Node* a = f.Get("auth")) {
      Fields af(d, *a, f.PathOf("auth"), {"username", "password"});
      DecodeString(d, af, "username", out->mutable_auth()->mutable_username());
      DecodeString(d, af, "password", out->mutable_auth()->mutable_password());
    }
  }

  void Validate(const v1::Task& task, const std::string& path,
                pipeline::KindChecks* checks) const override {
    std::string p = Field(path, "containerize");
    const v1::ContainerizeSpec& c = task.containerize();
    checks->Require(!c.base().empty(), p, "base");
    if (!c.base().empty() && !Substituted(c.base())) {
      if (auto base = ParseBase(c.base()); !base.ok()) {
        checks->Error(Field(p, "base"), std::string(base.status().message()));
      }
    }
    for (int i = 0; i < c.layers_size(); ++i) {
      std::string item = Index(Field(p, "layers"), i);
      checks->Require(!c.layers(i).artifact().empty(), item, "artifact");
      if (!absl::StartsWith(c.layers(i).to(), "/")) {
        checks->Error(item, absl::StrCat("layer 'to' must be an absolute "
                                         "directory in the image, got '",
                                         c.layers(i).to(), "'"));
      } else if (auto to = oci::NormalizeImagePath(c.layers(i).to());
                 !to.ok()) {
        checks->Error(Field(item, "to"), std::string(to.status().message()));
      }
      if (auto mode = ParseMode(c.layers(i).mode()); !mode.ok()) {
        checks->Error(Field(item, "mode"),
                      std::string(mode.status().message()));
      }
    }
    checks->Env(c.env(), Field(p, "env"));
    if (c.has_auth()) {
      static const RE2* const kSecretRef =
          new RE2(R"(\$\{params\.[A-Za-z_][A-Za-z0-9_]*\})");
      if (!RE2::FullMatch(c.auth().password(), *kSecretRef)) {
        checks->Error(Field(Field(p, "auth"), "password"),
                      "must be a secret param, written ${params.NAME}");
      }
      checks->Require(!c.auth().username().empty(), Field(p, "auth"),
                      "username");
    }
    for (int i = 0; i < c.expose_size(); ++i) {
      if (Substituted(c.expose(i))) continue;
      if (auto port = oci::NormalizePort(c.expose(i)); !port.ok()) {
        checks->Error(Index(Field(p, "expose"), i),
                      std::string(port.status().message()));
      }
    }
    if (!c.platform().empty() && !Substituted(c.platform())) {
      if (auto pl = oci::Platform::Parse(c.platform()); !pl.ok()) {
        checks->Error(Field(p, "platform"), std::string(pl.status().message()));
      }
    }
    if (auto comp = oci::ParseCompression(c.compression()); !comp.ok()) {
      checks->Error(Field(p, "compression"),
                    std::string(comp.status().message()));
    }
    if (!c.source_date_epoch().empty() && !Substituted(c.source_date_epoch())) {
      if (auto e = ParseEpoch(c.source_date_epoch(), "source_date_epoch");
          !e.ok()) {
        checks->Error(Field(p, "source_date_epoch"),
                      std::string(e.status().message()));
      }
    }
  }

  void ForEachString(v1::Task* task, const std::string& path,
                     const pipeline::TaskStringVisitor& visit) const override {
    const FieldUse lit = FieldUse::kLiteral, sub = FieldUse::kSubstituted;
    std::string p = Field(path, "containerize");
    v1::ContainerizeSpec* c = task->mutable_containerize();
    visit(Field(p, "base"), c->mutable_base(), sub);
    for (int i = 0; i < c->layers_size(); ++i) {
      std::string item = Index(Field(p, "layers"), i);
      visit(Field(item, "artifact"), c->mutable_layers(i)->mutable_artifact(),
            lit);
      visit(Field(item, "to"), c->mutable_layers(i)->mutable_to(), lit);
      visit(Field(item, "mode"), c->mutable_layers(i)->mutable_mode(), lit);
    }
    pipeline::VisitList(c->mutable_entrypoint(), Field(p, "entrypoint"), sub,
                        visit);
    pipeline::VisitList(c->mutable_cmd(), Field(p, "cmd"), sub, visit);
    pipeline::VisitEnv(c->mutable_env(), Field(p, "env"), sub, visit);
    pipeline::VisitLabels(c->mutable_labels(), Field(p, "labels"), visit);
    visit(Field(p, "workdir"), c->mutable_workdir(), sub);
    visit(Field(p, "user"), c->mutable_user(), sub);
    visit(Field(p, "push"), c->mutable_push(), sub);
    if (c->has_auth()) {
      visit(Field(Field(p, "auth"), "username"),
            c->mutable_auth()->mutable_username(), sub);
      visit(Field(Field(p, "auth"), "password"),
            c->mutable_auth()->mutable_password(), FieldUse::kSecretEnv);
    }
    visit(Field(p, "artifact"), c->mutable_artifact(), lit);
    visit(Field(p, "platform"), c->mutable_platform(), lit);
    pipeline::VisitList(c->mutable_expose(), Field(p, "expose"), sub, visit);
    visit(Field(p, "source_date_epoch"), c->mutable_source_date_epoch(), sub);
    visit(Field(p, "compression"), c->mutable_compression(), lit);
  }

  bool MakesRequests(const v1::Task& task) const override {
    return !task.containerize().push().empty();
  }

  pipeline::KindFacts Facts(const v1::Task& task) const override {
    pipeline::KindFacts facts;
    const v1::ContainerizeSpec& c = task.containerize();
    for (int i = 0; i < c.layers_size(); ++i) {
      facts.consumed.push_back(
          {c.layers(i).artifact(),
           Field(Index("containerize.layers", i), "artifact")});
    }
    if (!Substituted(c.base())) {
      if (auto base = ParseBase(c.base());
          base.ok() && base->kind == BaseRef::kLayout) {
        facts.consumed.push_back({base->artifact, "containerize.base"});
      }
    }
    facts.produced = ProducedArtifact(task);
    facts.output_keys = {"digest", "image"};
    facts.memoizable = true;
    return facts;
  }

  absl::optional<pipeline::Refusal> Unsupported(
      const v1::Task& task, const pipeline::ExecCapabilities&) const override {
    return absl::nullopt;
  }

  AttemptOutcome Execute(const KindCall& call) const override;

 private:
  static bool Substituted(const std::string& s) {
    return s.find("${") != std::string::npos;
  }
  AttemptOutcome Build(const KindCall& call, const TaskKey& key,
                       const BaseRef& base, const std::string& base_input,
                       oci::ImageSource* registry_base,
                       const std::string& base_digest, int64_t epoch,
                       const oci::Platform& platform,
                       oci::Compression compression) const;
};

AttemptOutcome ContainerizeKind::Execute(const KindCall& call) const {
  const v1::ContainerizeSpec& spec = call.task.containerize();
  absl::StatusOr<BaseRef> base = ParseBase(spec.base());
  if (!base.ok()) return Failed(base.status(), "containerize: ");
  absl::StatusOr<oci::Platform> platform = oci::Platform::Parse(
      spec.platform().empty() ? "linux/amd64" : spec.platform());
  if (!platform.ok()) return Failed(platform.status(), "containerize: ");
  absl::StatusOr<oci::Compression> compression =
      oci::ParseCompression(spec.compression());
  if (!compression.ok()) return Failed(compression.status(), "containerize: ");
  absl::StatusOr<int64_t> epoch = Epoch(call);
  if (!epoch.ok()) return Failed(epoch.status(), "containerize: ");

  // What the key covers beyond the spec: the layer artifacts' digests, the
  // base's identity and the mtime actually used.
  v1::Task key_task = call.key_view;
  // Credentials do not change the image.
  key_task.mutable_containerize()->clear_auth();
  key_task.mutable_containerize()->set_source_date_epoch(absl::StrCat(*epoch));
  std::vector<std::pair<std::string, std::string>> inputs;
  for (int i = 0; i < spec.layers_size(); ++i) {
    const std::string& artifact = spec.layers(i).artifact();
    absl::StatusOr<std::string> digest =
        call.env->ArtifactDigest(artifact, call.finished);
    if (!digest.ok()) return Failed(digest.status(), "containerize: ");
    v1::ArtifactInput* in = key_task.add_inputs();
    in->set_artifact(artifact);
    in->set_path(absl::StrCat("containerize.layers[", i, "]"));
    inputs.emplace_back(artifact, *digest);
  }
  std::string base_input;   // a layout artifact's tree digest
  std::string base_digest;  // a registry base's manifest digest
  std::unique_ptr<oci::ImageSource> registry_source;
  if (base->kind == BaseRef::kLayout) {
    absl::StatusOr<std::string> digest =
        call.env->ArtifactDigest(base->artifact, call.finished);
    if (!digest.ok()) return Failed(digest.status(), "containerize base: ");
    base_input = *digest;
    v1::ArtifactInput* in = key_task.add_inputs();
    in->set_artifact(base->artifact);
    in->set_path("containerize.base");
    inputs.emplace_back(base->artifact, *digest);
  } else if (base->kind == BaseRef::kRegistry) {
    absl::StatusOr<std::shared_ptr<oci::ImageSources>> access =
        RegistryAccess(call);
    if (!access.ok()) return Failed(access.status(), "containerize base: ");
    oci::ImageSources* sources = access->get();
    if (sources == nullptr) {
      return Failed(absl::FailedPreconditionError(absl::StrCat(
          "containerize: base '", base->reference,
          "' is a registry reference, but no registry access is configured "
          "for this kiln (use scratch or an oci-layout: artifact base)")));
    }
    absl::StatusOr<oci::OpenedReference> opened =
        sources->Open(base->reference);
    if (!opened.ok()) return Failed(opened.status(), "containerize base: ");
    // A tag is resolved to the platform's manifest digest now: the digest,
    // never the tag, enters the key.
    absl::StatusOr<oci::ResolvedImage> resolved =
        oci::ResolveImage(*opened->source, opened->tag_or_digest, *platform);
    if (!resolved.ok()) {
      return Failed(resolved.status(), "containerize base: ", true);
    }
    base_digest = resolved->manifest.digest;
    registry_source = std::move(opened->source);
    // Named by a marker no artifact can be confused with in the key.
    const std::string name = absl::StrCat("image ", base->reference);
    v1::ArtifactInput* in = key_task.add_inputs();
    in->set_artifact(name);
    in->set_path("containerize.base");
    inputs.emplace_back(name, base_digest);
  }
  KindCall keyed{call.task,     key_task,    call.attempt,
                 call.finished, call.cancel, call.env};
  AttemptOutcome o =
      Memoize(*this, keyed, inputs, [&](const TaskKey& key, std::string*) {
        return Build(call, key, *base, base_input, registry_source.get(),
                     base_digest, *epoch, *platform, *compression);
      });
  if ((o.state != v1::TASK_SUCCEEDED && o.state != v1::TASK_CACHED) ||
      spec.push().empty()) {
    return o;
  }
  const std::string artifact = ProducedArtifact(call.task);
  absl::StatusOr<std::string> pushed =
      PushLayout(call, o.outputs[artifact], o.results["digest"], spec.push());
  if (!pushed.ok()) return Failed(pushed.status(), "containerize push: ");
  return o;
}

AttemptOutcome ContainerizeKind::Build(
    const KindCall& call, const TaskKey& key, const BaseRef& base,
    const std::string& base_input, oci::ImageSource* registry_base,
    const std::string& base_digest, int64_t epoch,
    const oci::Platform& platform, oci::Compression compression) const {
  const v1::ContainerizeSpec& spec = call.task.containerize();
  const TaskRunnerContext& ctx = call.env->ctx();
  ScopedWorkDir work(call.env, call.task, call.attempt, /*keep=*/false);
  absl::Status s = work.Create();
  if (!s.ok()) return Failed(s, "containerize: ", true);

  oci::BuildRequest req;
  req.platform = platform;
  req.created_epoch = epoch;
  req.compression = compression;
  req.workers = static_cast<int>(
      std::min(8u, std::max(1u, std::thread::hardware_concurrency())));

  std::unique_ptr<oci::LayoutSource> layout_base;
  if (base.kind == BaseRef::kLayout) {
    absl::StatusOr<std::unique_ptr<oci::LayoutSource>> opened =
        OpenLayoutArtifact(call, base_input, work.fd(), "base", work.path(),
                           absl::StrCat(kLayoutPrefix, base.artifact));
    if (!opened.ok()) return Failed(opened.status(), "containerize base: ");
    layout_base = *std::move(opened);
    absl::StatusOr<std::string> digest =
        ResolveLayoutBase(*layout_base, base.tag_or_digest, platform);
    if (!digest.ok()) return Failed(digest.status(), "containerize base: ");
    req.base = layout_base.get();
    req.base_digest = *digest;
    req.base_name = spec.base();
  } else if (base.kind == BaseRef::kRegistry) {
    req.base = registry_base;
    req.base_digest = base_digest;
    req.base_name = base.reference;
  }

  // Each layer's artifact, unstashed (verified) into the work directory.
  absl::StatusOr<cas::UniqueFd> layers_dir =
      cas::MakeDirAt(work.fd(), "layers");
  if (!layers_dir.ok()) return Failed(layers_dir.status(), "containerize: ");
  std::vector<cas::UniqueFd> roots;
  for (int i = 0; i < spec.layers_size(); ++i) {
    if (call.cancel != nullptr && call.cancel->cancelled()) {
      return Outcome(v1::TASK_CANCELLED, "cancelled");
    }
    const v1::ImageLayer& layer = spec.layers(i);
    absl::StatusOr<std::string> tree =
        call.env->ArtifactDigest(layer.artifact(), call.finished);
    if (!tree.ok()) return Failed(tree.status(), "containerize: ");
    absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(*tree);
    if (!digest.ok()) return Failed(digest.status(), "containerize: ");
    std::string name = absl::StrCat(i);
    absl::StatusOr<cas::UniqueFd> made =
        cas::MakeDirAt(layers_dir->get(), name);
    if (!made.ok()) return Failed(made.status(), "containerize: ");
    s = ctx.artifacts->UnstashAt(*digest, layers_dir->get(), name,
                                 work.path() + "/layers", false);
    if (!s.ok()) {
      return Failed(s, absl::StrCat("containerize: unstash layer artifact '",
                                    layer.artifact(), "': "));
    }
    absl::StatusOr<cas::UniqueFd> root =
        cas::OpenDirBeneath(layers_dir->get(), name);
    if (!root.ok()) return Failed(root.status(), "containerize: ");
    absl::StatusOr<int> mode = ParseMode(layer.mode());
    if (!mode.ok()) return Failed(mode.status(), "containerize: ");
    oci::BuildLayer l;
    l.source.root_fd = root->get();
    l.source.display = absl::StrCat("artifact '", layer.artifact(), "'");
    l.source.to = layer.to();
    l.source.file_mode = *mode;
    l.source.uid = layer.uid();
    l.source.gid = layer.gid();
    l.created_by = absl::StrCat("kiln containerize: artifact ",
                                layer.artifact(), " -> ", layer.to());
    req.layers.push_back(std::move(l));
    roots.push_back(*std::move(root));
  }
  req.entrypoint.assign(spec.entrypoint().begin(), spec.entrypoint().end());
  req.cmd.assign(spec.cmd().begin(), spec.cmd().end());
  for (const auto& e : spec.env()) req.env.emplace_back(e.name(), e.value());
  req.workdir = spec.workdir();
  req.user = spec.user();
  for (const auto& l : spec.labels())
    req.labels.emplace_back(l.key(), l.value());
  req.exposed_ports.assign(spec.expose().begin(), spec.expose().end());

  absl::StatusOr<oci::BuiltImage> built =
      oci::BuildImage(req, work.fd(), "image");
  if (!built.ok()) return Failed(built.status(), "containerize: ");
  auto stashed = ctx.artifacts->Stash(work.path() + "/image");
  if (!stashed.ok()) return Failed(stashed.status(), "containerize: ");

  AttemptOutcome o = Outcome(v1::TASK_SUCCEEDED, "");
  o.cache_key = key.key;
  const std::string artifact = ProducedArtifact(call.task);
  o.outputs[artifact] = stashed->tree.ToString();
  o.results["digest"] = built->manifest_digest;
  o.results["image"] =
      spec.push().empty()
          ? absl::StrCat(kLayoutPrefix, artifact, "@", built->manifest_digest)
          : absl::StrCat(StripTag(spec.push()), "@", built->manifest_digest);
  return o;
}

}  // namespace

const Kind& Containerize() {
  static const auto* kind = new ContainerizeKind();
  return *kind;
}

}  // namespace kiln::kinds
