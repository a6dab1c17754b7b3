#include "engine/image/testing/memory_registry.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"

namespace kiln::image::testing {
namespace {

la_ssize_t AppendTo(struct archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

// One gzip member of `data`.
std::string GzipMember(const std::string& data) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_raw(a);
  archive_write_set_bytes_per_block(a, 0);
  archive_write_open(a, &out, nullptr, AppendTo, nullptr);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "data");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  archive_write_header(a, e);
  archive_entry_free(e);
  size_t done = 0;
  while (done < data.size()) {
    size_t n = std::min<size_t>(data.size() - done, 1 << 20);
    archive_write_data(a, data.data() + done, n);
    done += n;
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// A ustar header for a regular file of `size` bytes.
std::string UstarHeader(const std::string& name, int64_t size) {
  std::string h(512, '\0');
  memcpy(&h[0], name.data(), name.size());
  memcpy(&h[100], "0000644", 7);
  memcpy(&h[108], "0000000", 7);
  memcpy(&h[116], "0000000", 7);
  std::string sz = absl::StrFormat("%011o", size);
  memcpy(&h[124], sz.data(), 11);
  memcpy(&h[136], "00000000000", 11);
  h[156] = '0';
  memcpy(&h[257], "ustar", 6);
  memcpy(&h[263], "00", 2);
  memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  std::string chk = absl::StrFormat("%06o", sum);
  memcpy(&h[148], chk.data(), 6);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

}  // namespace

struct TarBuilder::Impl {
  std::string out;
  struct archive* a = nullptr;
  int64_t mtime = 1700000000;

  void Add(const std::string& path, mode_t type, int mode, int uid, int gid,
           const std::string& content, const char* symlink,
           const char* hardlink, dev_t rdev = 0) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
    archive_entry_set_mtime(e, mtime, 0);
    if (symlink != nullptr) archive_entry_set_symlink(e, symlink);
    if (hardlink != nullptr) archive_entry_set_hardlink(e, hardlink);
    if (rdev != 0) archive_entry_set_rdev(e, rdev);
    archive_entry_set_size(e, type == AE_IFREG && hardlink == nullptr
                                  ? static_cast<la_int64_t>(content.size())
                                  : 0);
    archive_write_header(a, e);
    if (!content.empty()) archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
};

TarBuilder::TarBuilder() : impl_(std::make_unique<Impl>()) {
  impl_->a = archive_write_new();
  archive_write_set_format_pax_restricted(impl_->a);
  archive_write_open(impl_->a, &impl_->out, nullptr, AppendTo, nullptr);
}

TarBuilder::~TarBuilder() {
  if (impl_->a != nullptr) archive_write_free(impl_->a);
}

TarBuilder& TarBuilder::Dir(const std::string& path, int mode, int uid,
                            int gid) {
  impl_->Add(path, AE_IFDIR, mode, uid, gid, "", nullptr, nullptr);
  return *this;
}
TarBuilder& TarBuilder::File(const std::string& path,
                             const std::string& content, int mode, int uid,
                             int gid) {
  impl_->Add(path, AE_IFREG, mode, uid, gid, content, nullptr, nullptr);
  return *this;
}
TarBuilder& TarBuilder::Symlink(const std::string& path,
                                const std::string& target) {
  impl_->Add(path, AE_IFLNK, 0777, 0, 0, "", target.c_str(), nullptr);
  return *this;
}
TarBuilder& TarBuilder::Hardlink(const std::string& path,
                                 const std::string& target) {
  impl_->Add(path, AE_IFREG, 0644, 0, 0, "", nullptr, target.c_str());
  return *this;
}
TarBuilder& TarBuilder::Device(const std::string& path, bool block) {
  impl_->Add(path, block ? AE_IFBLK : AE_IFCHR, 0666, 0, 0, "", nullptr,
             nullptr, makedev(1, 3));
  return *this;
}
TarBuilder& TarBuilder::Fifo(const std::string& path) {
  impl_->Add(path, AE_IFIFO, 0644, 0, 0, "", nullptr, nullptr);
  return *this;
}

std::string TarBuilder::Finish() {
  archive_write_close(impl_->a);
  archive_write_free(impl_->a);
  impl_->a = nullptr;
  return std::move(impl_->out);
}

std::string Gzip(const std::string& data) { return GzipMember(data); }

std::string Zstd(const std::string& data) {
  std::string out;
  archive::ZstdCompressor c(
      [&out](absl::string_view chunk) {
        out.append(chunk.data(), chunk.size());
        return absl::OkStatus();
      },
      1);
  c.Write(data).IgnoreError();
  c.Finish().IgnoreError();
  return out;
}

std::string ZeroBomb(int64_t size, const std::string& compression) {
  auto compress = [&](const std::string& data) {
    return compression == "zstd" ? Zstd(data) : GzipMember(data);
  };
  constexpr int64_t kChunk = int64_t{64} << 20;
  std::string out = compress(UstarHeader("zeros", size));
  std::string chunk = compress(std::string(kChunk, '\0'));
  int64_t left = size;
  for (; left >= kChunk; left -= kChunk) out += chunk;
  // The rest of the file, its padding and the end-of-archive blocks.
  out += compress(std::string(left + (512 - size % 512) % 512 + 1024, '\0'));
  return out;
}

// One repository of the registry.
class MemoryRegistry::Source : public oci::ImageSource {
 public:
  Source(MemoryRegistry* registry, std::string repository)
      : registry_(registry), repository_(std::move(repository)) {}
  std::string Describe() const override {
    return absl::StrCat("test registry repository ", repository_);
  }

  absl::StatusOr<oci::FetchedManifest> GetManifest(
      const std::string& tag_or_digest) override {
    MutexLock lock(&registry_->mu_);
    std::string digest = tag_or_digest;
    if (!absl::StartsWith(tag_or_digest, "sha256:")) {
      auto repo = registry_->tags_.find(repository_);
      if (repo == registry_->tags_.end() ||
          repo->second.count(tag_or_digest) == 0) {
        return absl::NotFoundError(absl::StrCat(
            Describe(), ": manifest unknown: tag ", tag_or_digest));
      }
      digest = repo->second.at(tag_or_digest);
    }
    auto it = registry_->blobs_.find(digest);
    if (it == registry_->blobs_.end()) {
      return absl::NotFoundError(
          absl::StrCat(Describe(), ": manifest unknown: ", digest));
    }
    oci::FetchedManifest m;
    m.bytes = it->second.bytes;
    m.media_type = it->second.media_type;
    // A lying registry claims the digest asked for (or tagged).
    m.digest = it->second.lie ? digest : cas::Digest::Of(m.bytes).ToString();
    if (!it->second.lie && m.digest != digest) {
      return absl::DataLossError("manifest digest mismatch");
    }
    return m;
  }

  absl::Status FetchBlob(const oci::Descriptor& blob, int out_fd) override {
    Blob copy;
    {
      MutexLock lock(&registry_->mu_);
      registry_->fetches_[blob.digest]++;
      if (!registry_->held_.empty() && registry_->held_ == blob.digest) {
        registry_->held_.clear();  // only this fetch waits
        registry_->blocked_ = true;
        registry_->mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return registry_->released_;
        });
      }
      auto it = registry_->blobs_.find(blob.digest);
      if (it == registry_->blobs_.end()) {
        return absl::NotFoundError(
            absl::StrCat(Describe(), ": blob unknown: ", blob.digest));
      }
      copy = it->second;
    }
    if (!copy.lie) {
      if (cas::Digest::Of(copy.bytes).ToString() != blob.digest ||
          static_cast<int64_t>(copy.bytes.size()) != blob.size) {
        return absl::DataLossError(
            absl::StrCat(Describe(), ": blob ", blob.digest,
                         " does not match its digest or size"));
      }
    }
    return cas::WriteAll(out_fd, copy.bytes, "blob");
  }

 private:
  MemoryRegistry* registry_;
  std::string repository_;
};

MemoryRegistry::MemoryRegistry() = default;
MemoryRegistry::~MemoryRegistry() = default;

oci::Descriptor MemoryRegistry::AddBlob(const std::string& bytes,
                                        const std::string& media_type) {
  oci::Descriptor d;
  d.media_type = media_type;
  d.digest = cas::Digest::Of(bytes).ToString();
  d.size = static_cast<int64_t>(bytes.size());
  MutexLock lock(&mu_);
  blobs_[d.digest] = Blob{bytes, media_type, false};
  return d;
}

BuiltLayer MemoryRegistry::AddLayer(const std::string& tar,
                                    const std::string& compression) {
  if (compression == "gzip") {
    return AddRawLayer(Gzip(tar), oci::kOciLayerGzip,
                       cas::Digest::Of(tar).ToString());
  }
  if (compression == "zstd") {
    return AddRawLayer(Zstd(tar), oci::kOciLayerZstd,
                       cas::Digest::Of(tar).ToString());
  }
  return AddRawLayer(tar, oci::kOciLayerTar, cas::Digest::Of(tar).ToString());
}

BuiltLayer MemoryRegistry::AddRawLayer(const std::string& compressed,
                                       const std::string& media_type,
                                       const std::string& diff_id) {
  BuiltLayer layer;
  layer.descriptor = AddBlob(compressed, media_type);
  layer.diff_id = diff_id;
  return layer;
}

std::string MemoryRegistry::AddImage(const std::string& repository,
                                     const std::vector<BuiltLayer>& layers,
                                     oci::ImageConfig config,
                                     const std::string& tag) {
  if (config.platform.os.empty()) {
    config.platform.os = "linux";
    config.platform.architecture = "amd64";
  }
  config.diff_ids.clear();
  oci::Manifest m;
  m.media_type = oci::kOciManifest;
  for (const BuiltLayer& l : layers) {
    config.diff_ids.push_back(l.diff_id);
    m.layers.push_back(l.descriptor);
  }
  m.config = AddBlob(oci::ToJson(config), oci::kOciConfig);
  std::string digest = AddBlob(oci::ToJson(m), oci::kOciManifest).digest;
  if (!tag.empty()) Tag(repository, tag, digest);
  return digest;
}

std::string MemoryRegistry::AddIndex(
    const std::string& repository,
    const std::vector<std::pair<oci::Platform, std::string>>& manifests,
    const std::string& tag) {
  oci::Index index;
  index.media_type = oci::kOciIndex;
  for (const auto& [platform, digest] : manifests) {
    oci::Descriptor d;
    d.media_type = oci::kOciManifest;
    d.digest = digest;
    {
      MutexLock lock(&mu_);
      d.size = static_cast<int64_t>(blobs_[digest].bytes.size());
    }
    d.platform = platform;
    index.manifests.push_back(d);
  }
  std::string digest = AddBlob(oci::ToJson(index), oci::kOciIndex).digest;
  if (!tag.empty()) Tag(repository, tag, digest);
  return digest;
}

void MemoryRegistry::Tag(const std::string& repository, const std::string& tag,
                         const std::string& digest) {
  MutexLock lock(&mu_);
  tags_[repository][tag] = digest;
}

void MemoryRegistry::Corrupt(const std::string& digest,
                             const std::string& bytes) {
  MutexLock lock(&mu_);
  Blob& b = blobs_[digest];
  b.bytes = bytes;
  b.lie = true;
}

void MemoryRegistry::Hold(const std::string& digest) {
  MutexLock lock(&mu_);
  held_ = digest;
  blocked_ = false;
  released_ = false;
}

void MemoryRegistry::Release() {
  MutexLock lock(&mu_);
  released_ = true;
}

void MemoryRegistry::AwaitBlocked() {
  MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return blocked_; });
}

int MemoryRegistry::Fetches(const std::string& digest) const {
  MutexLock lock(&mu_);
  auto it = fetches_.find(digest);
  return it == fetches_.end() ? 0 : it->second;
}

int MemoryRegistry::Opens() const {
  MutexLock lock(&mu_);
  return opens_;
}

absl::StatusOr<oci::OpenedReference> MemoryRegistry::Open(
    const std::string& reference) {
  oci::OpenedReference out;
  std::string name = reference;
  size_t at = name.find('@');
  if (at != std::string::npos) {
    out.tag_or_digest = name.substr(at + 1);
    name = name.substr(0, at);
    if (!cas::Digest::Parse(out.tag_or_digest).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference '", reference, "': bad digest"));
    }
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string::npos &&
      (slash == std::string::npos || colon > slash)) {
    if (out.tag_or_digest.empty()) out.tag_or_digest = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  if (name.empty() || name.find(' ') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference '", reference, "' is malformed"));
  }
  if (out.tag_or_digest.empty()) out.tag_or_digest = "latest";
  out.name = name;
  out.source = std::make_unique<Source>(this, name);
  MutexLock lock(&mu_);
  opens_++;
  return out;
}

}  // namespace kiln::image::testing
