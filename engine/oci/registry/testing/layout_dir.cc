#include "engine/oci/registry/testing/layout_dir.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "nlohmann/json.hpp"

namespace kiln::oci::registry::testing {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteWholeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  return static_cast<bool>(out);
}

absl::StatusOr<FetchedManifest> LayoutDir::GetManifest(
    const std::string& tag_or_digest) {
  nlohmann::json index = nlohmann::json::parse(
      ReadWholeFile(dir_ + "/index.json"), nullptr, false);
  if (!index.is_object() || !index["manifests"].is_array()) {
    return absl::InvalidArgumentError(Describe() + ": bad index.json");
  }
  for (const auto& m : index["manifests"]) {
    std::string name = m.value("annotations", nlohmann::json::object())
                           .value("org.opencontainers.image.ref.name", "");
    std::string digest = m.value("digest", "");
    if (name != tag_or_digest && digest != tag_or_digest) continue;
    FetchedManifest out;
    out.bytes = Blob(digest);
    out.digest = digest;
    out.media_type = m.value("mediaType", "");
    if (cas::Digest::Of(out.bytes).ToString() != digest) {
      return absl::DataLossError(Describe() + ": manifest " + digest);
    }
    return out;
  }
  return absl::NotFoundError(
      absl::StrCat(Describe(), ": no image '", tag_or_digest, "'"));
}

absl::Status LayoutDir::FetchBlob(const Descriptor& blob, int out_fd) {
  std::string bytes = Blob(blob.digest);
  if (cas::Digest::Of(bytes).ToString() != blob.digest) {
    return absl::DataLossError(Describe() + ": blob " + blob.digest);
  }
  return cas::WriteAll(out_fd, bytes, "layout blob");
}

std::string LayoutDir::Blob(const std::string& digest) const {
  if (digest.size() != 71) return "";
  return ReadWholeFile(dir_ + "/blobs/sha256/" + digest.substr(7));
}

}  // namespace kiln::oci::registry::testing
