#include "engine/image/image_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "nlohmann/json.hpp"

namespace kiln::image {
namespace {

using cas::ErrnoStatus;

oci::Platform HostPlatform() {
  oci::Platform p;
  p.os = "linux";
#if defined(__x86_64__)
  p.architecture = "amd64";
#elif defined(__aarch64__)
  p.architecture = "arm64";
#elif defined(__i386__)
  p.architecture = "386";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
  p.architecture = "ppc64le";
#elif defined(__s390x__)
  p.architecture = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  p.architecture = "riscv64";
#else
  p.architecture = "unknown";
#endif
  return p;
}

bool IsDigest(const std::string& tag_or_digest) {
  return absl::StartsWith(tag_or_digest, "sha256:");
}

absl::Status WithContext(const absl::Status& st, absl::string_view context) {
  return absl::Status(st.code(), absl::StrCat(context, st.message()));
}

// Reads all of fd from offset 0 (at most `limit` bytes).
absl::StatusOr<std::string> ReadBack(int fd, size_t limit,
                                     absl::string_view what) {
  if (lseek(fd, 0, SEEK_SET) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rewind ", what));
  }
  std::string out;
  char buf[1 << 16];
  while (true) {
    absl::StatusOr<size_t> n = cas::ReadFull(fd, buf, sizeof(buf), what);
    if (!n.ok()) return n.status();
    out.append(buf, *n);
    if (out.size() > limit) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what, " is larger than ", limit, " bytes"));
    }
    if (*n < sizeof(buf)) return out;
  }
}

}  // namespace

// One Prepare()/Pin(): the reference and its source, opened on first need
// (an image already in the store needs no registry).
class ImageStore::Pull {
 public:
  Pull(ImageStore* store, std::string reference, std::string name)
      : store_(store),
        reference_(std::move(reference)),
        name_(std::move(name)) {}

  const std::string& reference() const { return reference_; }

  absl::StatusOr<oci::ImageSource*> Source() {
    if (source_ != nullptr) return source_.get();
    if (store_->options_.sources == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("image '", reference_,
                       "' is not in the image store and no registry access is "
                       "configured"));
    }
    absl::StatusOr<oci::OpenedReference> opened =
        store_->options_.sources->Open(name_);
    if (!opened.ok()) {
      return WithContext(opened.status(),
                         absl::StrCat("image '", reference_, "': "));
    }
    source_ = std::move(opened->source);
    return source_.get();
  }

  // A manifest or index by digest: from the store, else fetched, verified
  // and stored.
  absl::StatusOr<std::string> Manifest(const cas::Digest& digest) {
    absl::StatusOr<std::string> local = store_->LocalBlob(digest);
    if (local.ok() || !absl::IsNotFound(local.status())) return local;
    absl::StatusOr<oci::ImageSource*> source = Source();
    if (!source.ok()) return source.status();
    absl::StatusOr<oci::FetchedManifest> fetched =
        (*source)->GetManifest(digest.ToString());
    if (!fetched.ok()) {
      return WithContext(fetched.status(),
                         absl::StrCat("image '", reference_, "': manifest ",
                                      digest.ToString(), ": "));
    }
    absl::Status st = store_->StoreBlob(digest, fetched->bytes);
    if (!st.ok()) return st;
    return std::move(fetched->bytes);
  }

  // The config blob, likewise.
  absl::StatusOr<std::string> Config(const oci::Descriptor& d) {
    absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(d.digest);
    if (!digest.ok()) return digest.status();
    absl::StatusOr<std::string> local = store_->LocalBlob(*digest);
    if (local.ok() || !absl::IsNotFound(local.status())) return local;
    std::string what =
        absl::StrCat("image '", reference_, "': config ", d.digest);
    if (d.size < 0 || static_cast<size_t>(d.size) > oci::kMaxConfigBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": size ", d.size, " is over the limit of ",
                       oci::kMaxConfigBytes, " bytes"));
    }
    absl::StatusOr<oci::ImageSource*> source = Source();
    if (!source.ok()) return source.status();
    cas::UniqueFd fd(memfd_create("kiln-image-config", MFD_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, what);
    absl::Status st = (*source)->FetchBlob(d, fd.get());
    if (!st.ok()) return WithContext(st, absl::StrCat(what, ": "));
    absl::StatusOr<std::string> bytes =
        ReadBack(fd.get(), oci::kMaxConfigBytes, what);
    if (!bytes.ok()) return bytes.status();
    st = store_->StoreBlob(*digest, *bytes);
    if (!st.ok()) return WithContext(st, absl::StrCat(what, ": "));
    return bytes;
  }

 private:
  ImageStore* store_;
  std::string reference_;
  std::string name_;
  std::unique_ptr<oci::ImageSource> source_;
};

ImageStore::ImageStore(ImageStoreOptions options, cas::UniqueFd blobs,
                       cas::UniqueFd layers, cas::UniqueFd tmp)
    : options_(std::move(options)),
      blobs_fd_(std::move(blobs)),
      layers_fd_(std::move(layers)),
      tmp_fd_(std::move(tmp)) {}

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(
    ImageStoreOptions options) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("ImageStoreOptions.dir is required");
  }
  while (options.dir.size() > 1 && options.dir.back() == '/') {
    options.dir.pop_back();
  }
  if (options.platform.os.empty()) options.platform = HostPlatform();
  absl::Status st = cas::MakeDirs(options.dir);
  if (!st.ok()) return st;
  absl::StatusOr<cas::UniqueFd> root = cas::OpenTrustedDir(options.dir);
  if (!root.ok()) return root.status();
  absl::StatusOr<cas::UniqueFd> blobs =
      cas::MakeDirsBeneath(root->get(), "blobs/sha256", 0755);
  if (!blobs.ok()) return blobs.status();
  absl::StatusOr<cas::UniqueFd> layers =
      cas::MakeDirsBeneath(root->get(), "layers", 0755);
  if (!layers.ok()) return layers.status();
  absl::StatusOr<cas::UniqueFd> tmp =
      cas::MakeDirsBeneath(root->get(), "tmp", 0700);
  if (!tmp.ok()) return tmp.status();
  // What dead processes left half done.
  cas::SweepDeadTemps(layers->get()).IgnoreError();
  cas::SweepDeadTemps(tmp->get()).IgnoreError();
  return std::unique_ptr<ImageStore>(
      new ImageStore(std::move(options), std::move(*blobs), std::move(*layers),
                     std::move(*tmp)));
}

std::string ImageStore::LayerDir(const std::string& diff_id) const {
  absl::string_view hex = diff_id;
  absl::ConsumePrefix(&hex, "sha256:");
  return absl::StrCat(options_.dir, "/layers/", hex);
}

absl::StatusOr<std::string> ImageStore::LocalBlob(const cas::Digest& digest) {
  std::string hex = digest.Hex();
  cas::UniqueFd fd(
      openat(blobs_fd_.get(), hex.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::NotFoundError(digest.ToString());
    return ErrnoStatus(errno, absl::StrCat("open image blob ", hex));
  }
  absl::StatusOr<std::string> bytes =
      ReadBack(fd.get(), oci::kMaxConfigBytes, "image blob");
  if (bytes.ok() && cas::Digest::Of(*bytes) == digest) return bytes;
  // Damaged (or oversized): forget it, so that it is fetched again.
  unlinkat(blobs_fd_.get(), hex.c_str(), 0);
  return absl::NotFoundError(digest.ToString());
}

absl::Status ImageStore::StoreBlob(const cas::Digest& digest,
                                   const std::string& bytes) {
  cas::Digest got = cas::Digest::Of(bytes);
  if (got != digest) {
    return absl::DataLossError(absl::StrCat("blob ", digest.ToString(),
                                            " has digest ", got.ToString()));
  }
  return cas::WriteFileAtomically(
      absl::StrCat(options_.dir, "/blobs/sha256/", digest.Hex()), bytes);
}

absl::StatusOr<std::string> ImageStore::Pin(const std::string& reference) {
  return Pin(reference, options_.platform);
}

absl::StatusOr<std::string> ImageStore::Pin(const std::string& reference,
                                            const oci::Platform& platform) {
  std::string shown = absl::StrCat("image '", reference, "': ");
  if (options_.sources == nullptr) {
    // A reference by digest is already pinned; a tag needs a registry.
    size_t at = reference.rfind('@');
    if (at != std::string::npos && at > 0 &&
        cas::Digest::Parse(reference.substr(at + 1)).ok()) {
      return reference;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        shown,
        "cannot resolve the tag to a digest: no registry access is "
        "configured (pin the image by digest, name@sha256:…, or configure "
        "registry access)"));
  }
  absl::StatusOr<oci::OpenedReference> opened =
      options_.sources->Open(reference);
  if (!opened.ok()) return WithContext(opened.status(), shown);
  if (IsDigest(opened->tag_or_digest)) {
    absl::StatusOr<cas::Digest> d = cas::Digest::Parse(opened->tag_or_digest);
    if (!d.ok()) return WithContext(d.status(), shown);
    return absl::StrCat(opened->name, "@", d->ToString());
  }
  absl::StatusOr<oci::ResolvedImage> resolved =
      oci::ResolveImage(*opened->source, opened->tag_or_digest, platform);
  if (!resolved.ok()) {
    return WithContext(resolved.status(),
                       absl::StrCat(shown, "resolving the tag: "));
  }
  // Verified again here: the digest is what the cache key will trust.
  absl::StatusOr<cas::Digest> d = cas::Digest::Parse(resolved->manifest.digest);
  if (!d.ok()) return WithContext(d.status(), shown);
  absl::Status st = StoreBlob(*d, resolved->manifest.bytes);
  if (!st.ok()) return WithContext(st, shown);
  return absl::StrCat(opened->name, "@", d->ToString());
}

absl::StatusOr<PreparedImage> ImageStore::Prepare(
    const std::string& reference) {
  size_t at = reference.rfind('@');
  absl::StatusOr<cas::Digest> digest =
      at == std::string::npos ? absl::InvalidArgumentError("no digest")
                              : cas::Digest::Parse(reference.substr(at + 1));
  if (at == 0 || !digest.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image '", reference,
        "' is not pinned to a digest (name@sha256:…); images are pinned "
        "before the task's key is computed"));
  }
  Pull pull(this, reference, reference.substr(0, at));
  std::string shown = absl::StrCat("image '", reference, "': ");

  absl::StatusOr<std::string> bytes = pull.Manifest(*digest);
  if (!bytes.ok()) return bytes.status();
  nlohmann::json doc = nlohmann::json::parse(*bytes, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, "the manifest is not a JSON object"));
  }
  if (doc.contains("manifests")) {
    absl::StatusOr<oci::Index> index = oci::ParseIndex(*bytes);
    if (!index.ok()) return WithContext(index.status(), shown);
    absl::StatusOr<oci::Descriptor> chosen =
        oci::SelectPlatform(*index, options_.platform);
    if (!chosen.ok()) return WithContext(chosen.status(), shown);
    absl::StatusOr<cas::Digest> d = cas::Digest::Parse(chosen->digest);
    if (!d.ok()) return WithContext(d.status(), shown);
    bytes = pull.Manifest(*d);
    if (!bytes.ok()) return bytes.status();
  }
  absl::StatusOr<oci::Manifest> manifest = oci::ParseManifest(*bytes);
  if (!manifest.ok()) return WithContext(manifest.status(), shown);
  absl::StatusOr<std::string> config_bytes = pull.Config(manifest->config);
  if (!config_bytes.ok()) return config_bytes.status();
  absl::StatusOr<oci::ImageConfig> config =
      oci::ParseImageConfig(*config_bytes);
  if (!config.ok()) return WithContext(config.status(), shown);
  if (config->diff_ids.size() != manifest->layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown, "the manifest has ", manifest->layers.size(),
        " layers but the config lists ", config->diff_ids.size(), " diff_ids"));
  }
  PreparedImage out;
  out.reference = reference;
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    absl::Status st =
        EnsureLayer(pull, manifest->layers[i], config->diff_ids[i]);
    if (!st.ok()) return WithContext(st, shown);
    out.layer_dirs.push_back(LayerDir(config->diff_ids[i]));
  }
  out.env = config->env;
  out.workdir = config->working_dir;
  out.user = config->user;
  return out;
}

absl::Status ImageStore::EnsureLayer(Pull& pull, const oci::Descriptor& layer,
                                     const std::string& diff_id) {
  absl::StatusOr<cas::Digest> diff = cas::Digest::Parse(diff_id);
  if (!diff.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad diff_id \"", diff_id, "\" in the image config"));
  }
  std::string hex = diff->Hex();
  auto present = [&] {
    struct stat st;
    return fstatat(layers_fd_.get(), hex.c_str(), &st, AT_SYMLINK_NOFOLLOW) ==
               0 &&
           S_ISDIR(st.st_mode);
  };
  if (present()) return absl::OkStatus();
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    MutexLock lock(&mu_);
    auto it = flights_.find(hex);
    if (it != flights_.end()) {
      flight = it->second;
    } else {
      flight = std::make_shared<Flight>();
      flights_[hex] = flight;
      leader = true;
    }
    if (!leader) {
      // Another Prepare() of this process is unpacking it: share its result.
      mu_.Await([&flight] { return flight->done; });
      return flight->status;
    }
  }
  absl::Status st =
      present() ? absl::OkStatus() : UnpackFetched(pull, layer, diff_id, hex);
  MutexLock lock(&mu_);
  flight->status = st;
  flight->done = true;
  flights_.erase(hex);
  return st;
}

absl::Status ImageStore::UnpackFetched(Pull& pull, const oci::Descriptor& layer,
                                       const std::string& diff_id,
                                       const std::string& hex) {
  absl::StatusOr<std::string> compression =
      oci::LayerCompression(layer.media_type);
  if (!compression.ok()) {
    return WithContext(compression.status(),
                       absl::StrCat("layer ", layer.digest, ": "));
  }
  if (layer.size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer.digest, ": negative size"));
  }
  absl::StatusOr<oci::ImageSource*> source = pull.Source();
  if (!source.ok()) return source.status();
  // An anonymous file: a crash leaves nothing behind.
  std::string tmp_name = cas::TempName("blob");
  cas::UniqueFd fd(openat(tmp_fd_.get(), tmp_name.c_str(),
                          O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          0600));
  if (!fd.valid()) {
    return ErrnoStatus(
        errno, absl::StrCat("create a temp file in ", options_.dir, "/tmp"));
  }
  unlinkat(tmp_fd_.get(), tmp_name.c_str(), 0);
  absl::Status st = (*source)->FetchBlob(layer, fd.get());
  if (!st.ok()) {
    return WithContext(st, absl::StrCat("layer ", layer.digest, ": "));
  }
  LayerBlob blob;
  blob.media_type = layer.media_type;
  blob.digest = layer.digest;
  blob.size = layer.size;
  blob.diff_id = diff_id;
  return UnpackLayer(fd.get(), blob, layers_fd_.get(), hex,
                     absl::StrCat(options_.dir, "/layers"), options_.unpack);
}

}  // namespace kiln::image
