// The image builder: a base image (scratch, or a manifest from any
// ImageSource: an OCI layout, a registry), layers made from artifact trees
// (layer.h), and config changes -> an OCI image layout directory holding
// the base's blobs, the new layers, the config, the manifest and an
// index.json naming it `ref_name`.
//
// Deterministic: the manifest digest depends only on the request (the
// base's bytes, the trees' contents, the config, `created`), never on the
// host, the time, the umask or the order directories list their entries.
//
// Config semantics (as a Dockerfile's): env entries replace base entries
// of the same name in place and are appended otherwise; labels and exposed
// ports are merged; user and workdir replace when set; entrypoint replaces
// and clears the base's cmd unless cmd is also set; cmd replaces.
// created, and every history entry added, is `created_epoch` (RFC 3339).
#ifndef KILN_ENGINE_OCI_BUILDER_H_
#define KILN_ENGINE_OCI_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/oci/layer.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"

namespace kiln::oci {

struct BuildLayer {
  LayerSource source;
  std::string created_by;  // history entry text
};

struct BuildRequest {
  // The base: null for scratch. `base_digest` is the manifest digest the
  // caller resolved (never a tag: the key of a memoized build covers it).
  ImageSource* base = nullptr;
  std::string base_digest;
  std::string base_name;  // for the base annotations ("" for scratch)

  Platform platform{"linux", "amd64", ""};
  std::vector<BuildLayer> layers;

  // Config changes; empty/unset keeps the base's.
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::pair<std::string, std::string>> env;
  std::string workdir;
  std::string user;
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<std::string> exposed_ports;  // "8080", "8080/tcp", "53/udp"

  int64_t created_epoch = 0;
  Compression compression = Compression::kGzip;
  int workers = 2;
  std::string ref_name = "latest";
};

struct BuiltImage {
  std::string manifest_digest;
  int64_t manifest_size = 0;
  std::string config_digest;
  Manifest manifest;
  ImageConfig config;
  int64_t layer_bytes = 0;  // compressed bytes of the new layers
};

// Writes the layout into the new directory `name` of parent_fd.
absl::StatusOr<BuiltImage> BuildImage(const BuildRequest& request,
                                      int parent_fd, const std::string& name);

// "8080" -> "8080/tcp"; "53/udp" stays. InvalidArgument otherwise.
absl::StatusOr<std::string> NormalizePort(const std::string& port);

// "1970-01-01T00:00:00Z" for 0.
std::string Rfc3339(int64_t epoch);

}  // namespace kiln::oci

#endif  // KILN_ENGINE_OCI_BUILDER_H_
