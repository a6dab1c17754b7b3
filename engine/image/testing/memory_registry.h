// Test doubles for image pulls: a registry in memory (oci::ImageSources
// over blobs the test makes) and builders for layers, including hostile
// ones (absolute paths, "..", devices, hardlinks out, bombs).
// Thread-safe.
#ifndef KILN_ENGINE_IMAGE_TESTING_MEMORY_REGISTRY_H_
#define KILN_ENGINE_IMAGE_TESTING_MEMORY_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"

namespace kiln::image::testing {

// An uncompressed tar, entry by entry, written as given (nothing is
// normalised: hostile paths stay hostile).
class TarBuilder {
 public:
  TarBuilder();
  ~TarBuilder();
  TarBuilder(const TarBuilder&) = delete;
  TarBuilder& operator=(const TarBuilder&) = delete;

  TarBuilder& Dir(const std::string& path, int mode = 0755, int uid = 0,
                  int gid = 0);
  TarBuilder& File(const std::string& path, const std::string& content,
                   int mode = 0644, int uid = 0, int gid = 0);
  TarBuilder& Symlink(const std::string& path, const std::string& target);
  TarBuilder& Hardlink(const std::string& path, const std::string& target);
  // A character (or block) device.
  TarBuilder& Device(const std::string& path, bool block = false);
  TarBuilder& Fifo(const std::string& path);
  // The tar stream (end-of-archive blocks included).
  std::string Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Gzip(const std::string& data);
std::string Zstd(const std::string& data);
// A decompression bomb: a tar with one file "zeros" of `size` zero bytes,
// compressed ("gzip" as repeated gzip members, "zstd" as repeated frames)
// without ever holding the uncompressed stream. Its diff_id is not
// computed (an unpacker must stop it before the end).
std::string ZeroBomb(int64_t size, const std::string& compression);

struct BuiltLayer {
  oci::Descriptor descriptor;  // the compressed blob
  std::string diff_id;         // digest of the uncompressed tar
};

class MemoryRegistry : public oci::ImageSources {
 public:
  MemoryRegistry();
  ~MemoryRegistry() override;

  // Stores a blob; returns its descriptor.
  oci::Descriptor AddBlob(const std::string& bytes,
                          const std::string& media_type);
  // A layer from an uncompressed tar: compression "gzip", "zstd" or "".
  BuiltLayer AddLayer(const std::string& tar,
                      const std::string& compression = "gzip");
  // A layer whose blob is `compressed` (already compressed, e.g. a bomb
  // built from repeated gzip members) with the given diff_id.
  BuiltLayer AddRawLayer(const std::string& compressed,
                         const std::string& media_type,
                         const std::string& diff_id);
  // Writes the config (diff_ids from `layers`) and the manifest; tags it
  // in `repository` when `tag` is given. Returns the manifest digest.
  std::string AddImage(const std::string& repository,
                       const std::vector<BuiltLayer>& layers,
                       oci::ImageConfig config, const std::string& tag = "");
  // An index of (platform, manifest digest); returns its digest.
  std::string AddIndex(
      const std::string& repository,
      const std::vector<std::pair<oci::Platform, std::string>>& manifests,
      const std::string& tag = "");
  void Tag(const std::string& repository, const std::string& tag,
           const std::string& digest);
  // Serves `bytes` for `digest` from now on, without verifying them (a
  // lying registry); the store must catch it.
  void Corrupt(const std::string& digest, const std::string& bytes);
  // Blocks the next FetchBlob of `digest` (only that one) until Release();
  // AwaitBlocked() returns once it is blocked.
  void Hold(const std::string& digest);
  void Release();
  void AwaitBlocked();

  int Fetches(const std::string& digest) const;
  int Opens() const;

  absl::StatusOr<oci::OpenedReference> Open(
      const std::string& reference) override;

 private:
  class Source;
  struct Blob {
    std::string bytes;
    std::string media_type;
    bool lie = false;
  };

  mutable Mutex mu_;
  std::map<std::string, Blob> blobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, std::string>> tags_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> fetches_ ABSL_GUARDED_BY(mu_);
  int opens_ ABSL_GUARDED_BY(mu_) = 0;
  std::string held_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kiln::image::testing

#endif  // KILN_ENGINE_IMAGE_TESTING_MEMORY_REGISTRY_H_
