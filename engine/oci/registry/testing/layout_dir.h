// A test-only oci::ImageSource over an OCI image layout directory made by a
// trusted tool (umoci, skopeo): reads whole files, follows the directory as
// it is. Production code reads layouts through engine/oci/layout (hostile
// input); this is for tests and benchmarks that need an independent reader.
#ifndef KILN_ENGINE_OCI_REGISTRY_TESTING_LAYOUT_DIR_H_
#define KILN_ENGINE_OCI_REGISTRY_TESTING_LAYOUT_DIR_H_

#include <string>

#include "engine/oci/source.h"

namespace kiln::oci::registry::testing {

class LayoutDir : public ImageSource {
 public:
  explicit LayoutDir(std::string dir) : dir_(std::move(dir)) {}
  std::string Describe() const override { return "layout " + dir_; }
  // By the index's org.opencontainers.image.ref.name or by digest.
  absl::StatusOr<FetchedManifest> GetManifest(
      const std::string& tag_or_digest) override;
  absl::Status FetchBlob(const Descriptor& blob, int out_fd) override;
  // The bytes of blob `digest` ("" when absent).
  std::string Blob(const std::string& digest) const;

 private:
  std::string dir_;
};

// Whole-file helpers for tests.
std::string ReadWholeFile(const std::string& path);
bool WriteWholeFile(const std::string& path, const std::string& bytes);

}  // namespace kiln::oci::registry::testing

#endif  // KILN_ENGINE_OCI_REGISTRY_TESTING_LAYOUT_DIR_H_
