// The OCI image format's documents: descriptors, image manifests, image
// indexes and image configs, parsed from and written to JSON.
//
// Parsing accepts the OCI media types and their Docker v2 equivalents (what
// registries serve for most images); it refuses Docker schema 1, digests
// other than sha256, and documents over the size limits below. Writing is
// canonical: keys sorted, no insignificant whitespace, so that equal
// documents have equal digests on every machine.
//
// ImageConfig keeps the fields it does not model (a base image's
// Healthcheck, Volumes, rootfs extras, …) and writes them back unchanged.
#ifndef KILN_ENGINE_OCI_SPEC_H_
#define KILN_ENGINE_OCI_SPEC_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace kiln::oci {

// Media types (OCI image spec v1.1 and the Docker v2 equivalents).
inline constexpr char kOciManifest[] =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayerTar[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kOciLayerGzip[] =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerZstd[] =
    "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kDockerManifest[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerConfig[] =
    "application/vnd.docker.container.image.v1+json";
inline constexpr char kDockerLayerGzip[] =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

// Largest manifest or index accepted (registries commonly refuse > 4 MiB).
inline constexpr size_t kMaxManifestBytes = 4 << 20;
// Largest image config accepted.
inline constexpr size_t kMaxConfigBytes = 8 << 20;

bool IsManifestMediaType(absl::string_view media_type);
bool IsIndexMediaType(absl::string_view media_type);
// The layer's compression from its media type: "gzip", "zstd", "" (plain
// tar); InvalidArgument for a media type that is not a layer kiln can read
// (e.g. a foreign/non-distributable layer, or an encrypted one).
absl::StatusOr<std::string> LayerCompression(absl::string_view media_type);

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", …
  std::string variant;       // "v8", "" when none

  // "os/arch[/variant]", e.g. "linux/amd64", "linux/arm64/v8".
  static absl::StatusOr<Platform> Parse(absl::string_view text);
  std::string ToString() const;
  // True when `candidate` (an index entry's platform) runs this platform:
  // os and architecture equal, variant equal when this one names it
  // ("linux/arm64" matches "linux/arm64/v8").
  bool Accepts(const Platform& candidate) const;
  friend bool operator==(const Platform& a, const Platform& b) {
    return a.os == b.os && a.architecture == b.architecture &&
           a.variant == b.variant;
  }
};

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<64 hex>", checked when parsed
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;  // index entries only
};

struct Manifest {
  std::string media_type;  // kOciManifest or kDockerManifest
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};

struct Index {
  std::string media_type;  // kOciIndex or kDockerManifestList
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
};

struct HistoryEntry {
  std::string created;  // RFC 3339
  std::string created_by;
  std::string comment;
  bool empty_layer = false;
};

struct ImageConfig {
  std::string created;  // RFC 3339, "" when absent
  std::string author;
  Platform platform;  // os / architecture / variant
  // The "config" object.
  std::string user;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::vector<std::string> exposed_ports;  // "80/tcp", sorted
  // "rootfs": {"type": "layers", "diff_ids": [...]}
  std::vector<std::string> diff_ids;
  std::vector<HistoryEntry> history;
  // Fields not modelled above, written back as they came.
  nlohmann::json other_config = nlohmann::json::object();  // inside "config"
  nlohmann::json other = nlohmann::json::object();         // top level
};

// Parses a manifest (OCI or Docker v2). Checks schemaVersion 2, the media
// type (when the document names one it must agree with `media_type` if that
// is given, e.g. from a Content-Type header or a descriptor), and every
// descriptor's digest form.
absl::StatusOr<Manifest> ParseManifest(absl::string_view json,
                                       absl::string_view media_type = "");
absl::StatusOr<Index> ParseIndex(absl::string_view json,
                                 absl::string_view media_type = "");
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json);

// Canonical JSON (sorted keys, compact). OCI media types are written as
// given; an empty media_type field is left out.
std::string ToJson(const Manifest& manifest);
std::string ToJson(const Index& index);
std::string ToJson(const ImageConfig& config);

// Picks the manifest for `want` from an index: the first entry whose platform
// `want` accepts. NotFound lists the platforms the index offers.
absl::StatusOr<Descriptor> SelectPlatform(const Index& index,
                                          const Platform& want);

}  // namespace kiln::oci

#endif  // KILN_ENGINE_OCI_SPEC_H_
