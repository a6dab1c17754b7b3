#include "engine/oci/registry/push.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"

namespace kiln::oci::registry {
namespace {

constexpr int kMaxIndexDepth = 4;

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

class SourceBlobs : public BlobProvider {
 public:
  SourceBlobs(ImageSource* source, std::string temp_dir)
      : source_(source), temp_dir_(std::move(temp_dir)) {}

  absl::StatusOr<int> OpenBlob(const Descriptor& blob) override {
    int fd = open(temp_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("a temporary file in '", temp_dir_, "' for blob ",
                       blob.digest, ": ", strerror(errno)));
    }
    absl::Status s = source_->FetchBlob(blob, fd);
    if (!s.ok()) {
      close(fd);
      return s;
    }
    return fd;
  }

  absl::StatusOr<std::string> ReadManifest(
      const Descriptor& manifest) override {
    absl::StatusOr<FetchedManifest> m = source_->GetManifest(manifest.digest);
    if (!m.ok()) return m.status();
    return std::move(m->bytes);
  }

 private:
  ImageSource* const source_;
  const std::string temp_dir_;
};

class LayoutBlobs : public BlobProvider {
 public:
  explicit LayoutBlobs(int dir_fd) : dir_fd_(dir_fd) {}

  absl::StatusOr<int> OpenBlob(const Descriptor& blob) override {
    absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(blob.digest);
    if (!digest.ok()) return digest.status();
    absl::StatusOr<cas::UniqueFd> dir =
        cas::OpenDirBeneath(dir_fd_, "blobs/sha256");
    if (!dir.ok()) return dir.status();
    int fd = openat(dir->get(), digest->Hex().c_str(),
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      return ErrnoStatus(errno, absl::StrCat("OCI layout blob ", blob.digest));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size != blob.size) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          "OCI layout blob ", blob.digest,
          ": not a regular file of the descriptor's size ", blob.size));
    }
    return fd;
  }

 private:
  const int dir_fd_;
};

absl::Status PushBlobFrom(RegistrySource& target, BlobProvider& blobs,
                          const Descriptor& blob, const PushOptions& options) {
  // Skip before opening: opening may mean fetching the blob.
  absl::StatusOr<bool> exists = target.BlobExists(blob);
  if (!exists.ok()) return exists.status();
  if (*exists) return absl::OkStatus();
  absl::StatusOr<int> fd = blobs.OpenBlob(blob);
  if (!fd.ok()) return fd.status();
  FdCloser closer(*fd);
  return target.PushBlob(blob, *fd, options.mount_from);
}

// Pushes what `bytes` references, then puts it under `tag_or_digest`.
absl::StatusOr<std::string> PushDocument(
    RegistrySource& target, BlobProvider& blobs, const std::string& bytes,
    const std::string& media_type, const std::string& tag_or_digest,
    const PushOptions& options, int depth) {
  if (IsIndexMediaType(media_type)) {
    if (depth >= kMaxIndexDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("push to ", target.Describe(),
                       ": indexes nested deeper than ", kMaxIndexDepth));
    }
    absl::StatusOr<Index> index = ParseIndex(bytes, media_type);
    if (!index.ok()) return index.status();
    for (const Descriptor& child : index->manifests) {
      absl::StatusOr<std::string> child_bytes = blobs.ReadManifest(child);
      if (!child_bytes.ok()) return child_bytes.status();
      if (cas::Digest::Of(*child_bytes).ToString() != child.digest) {
        return absl::DataLossError(
            absl::StrCat("push to ", target.Describe(), ": child manifest ",
                         child.digest, " read with another digest"));
      }
      absl::StatusOr<std::string> pushed =
          PushDocument(target, blobs, *child_bytes, child.media_type,
                       child.digest, options, depth + 1);
      if (!pushed.ok()) return pushed.status();
    }
  } else if (IsManifestMediaType(media_type)) {
    absl::StatusOr<Manifest> manifest = ParseManifest(bytes, media_type);
    if (!manifest.ok()) return manifest.status();
    if (absl::Status s = PushBlobFrom(target, blobs, manifest->config, options);
        !s.ok()) {
      return s;
    }
    for (const Descriptor& layer : manifest->layers) {
      if (absl::Status s = PushBlobFrom(target, blobs, layer, options);
          !s.ok()) {
        return s;
      }
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "push to ", target.Describe(), ": '", media_type.substr(0, 200),
        "' is not a manifest or index media type"));
  }
  return target.PutManifest(tag_or_digest, bytes, media_type);
}

}  // namespace

absl::StatusOr<std::string> BlobProvider::ReadManifest(
    const Descriptor& manifest) {
  if (manifest.size < 0 ||
      static_cast<size_t>(manifest.size) > kMaxManifestBytes) {
    return absl::InvalidArgumentError(absl::StrCat("manifest ", manifest.digest,
                                                   ": size ", manifest.size,
                                                   " is over the limit"));
  }
  absl::StatusOr<int> fd = OpenBlob(manifest);
  if (!fd.ok()) return fd.status();
  FdCloser closer(*fd);
  std::string bytes(static_cast<size_t>(manifest.size) + 1, '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = pread(*fd, &bytes[got], bytes.size() - got, got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "reading manifest ", manifest.digest, ": ", strerror(errno)));
    }
    if (n == 0) break;
    got += n;
  }
  bytes.resize(got);
  if (cas::Digest::Of(bytes).ToString() != manifest.digest) {
    return absl::DataLossError(absl::StrCat(
        "manifest ", manifest.digest, ": the provided bytes do not match"));
  }
  return bytes;
}

std::unique_ptr<BlobProvider> BlobsFromLayout(int layout_dir_fd) {
  return std::make_unique<LayoutBlobs>(layout_dir_fd);
}

std::unique_ptr<BlobProvider> BlobsFromSource(ImageSource* source,
                                              std::string temp_dir) {
  return std::make_unique<SourceBlobs>(source, std::move(temp_dir));
}

absl::StatusOr<std::string> PushImage(RegistrySources& sources,
                                      const std::string& target_reference,
                                      const std::string& manifest_bytes,
                                      const std::string& media_type,
                                      BlobProvider& blobs,
                                      const PushOptions& options) {
  absl::StatusOr<Reference> ref = ParseReference(target_reference);
  if (!ref.ok()) return ref.status();
  if (!ref->tag.empty() && !ref->digest.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("push target '", target_reference,
                     "': name either a tag or a digest, not both"));
  }
  absl::StatusOr<std::unique_ptr<RegistrySource>> target =
      sources.OpenRepository(*ref);
  if (!target.ok()) return target.status();
  absl::StatusOr<std::string> digest =
      PushDocument(**target, blobs, manifest_bytes, media_type,
                   ref->TagOrDigest(), options, 0);
  if (!digest.ok()) return digest.status();
  for (const std::string& tag : options.extra_tags) {
    absl::StatusOr<std::string> tagged =
        (*target)->PutManifest(tag, manifest_bytes, media_type);
    if (!tagged.ok()) return tagged.status();
  }
  return digest;
}

bool AlreadyPushed(RegistrySources& sources,
                   const std::string& target_reference,
                   const std::string& manifest_digest) {
  absl::StatusOr<Reference> ref = ParseReference(target_reference);
  if (!ref.ok() || (!ref->tag.empty() && !ref->digest.empty())) return false;
  if (!ref->digest.empty() && ref->digest != manifest_digest) return false;
  absl::StatusOr<std::unique_ptr<RegistrySource>> target =
      sources.OpenRepository(*ref);
  if (!target.ok()) return false;
  absl::StatusOr<FetchedManifest> there =
      (*target)->GetManifest(ref->TagOrDigest());
  return there.ok() && there->digest == manifest_digest;
}

absl::StatusOr<std::string> PushFromSource(RegistrySources& sources,
                                           ImageSource& from,
                                           const std::string& tag_or_digest,
                                           const std::string& target_reference,
                                           const std::string& temp_dir,
                                           const PushOptions& options) {
  absl::StatusOr<FetchedManifest> top = from.GetManifest(tag_or_digest);
  if (!top.ok()) return top.status();
  std::unique_ptr<BlobProvider> blobs = BlobsFromSource(&from, temp_dir);
  return PushImage(sources, target_reference, top->bytes, top->media_type,
                   *blobs, options);
}

}  // namespace kiln::oci::registry
