// ImageAccess: how an executor running on this host gets the root filesystem
// of a task's image (ExecRequest.image) without seeing the engine's stores or
// talking to a registry itself.
//
// The engine implements it (pull by digest, verify, unpack each layer once
// per layer digest into its layer cache, safely); the local sandbox mounts the
// prepared layers read-only under a per-task writable layer. A pod executor
// does not use it: the image reference goes to the pod spec.
//
// Implementations are thread-safe: one instance serves concurrent tasks.
#ifndef KILN_EXECUTORS_IMAGE_ACCESS_H_
#define KILN_EXECUTORS_IMAGE_ACCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln {

// An image ready to run: its layers unpacked on this host and its config.
struct PreparedImage {
  // The pinned reference ("name@sha256:…"), for logs and the executor's
  // messages.
  std::string reference;
  // Directories of the unpacked layers, bottom (base) first. Each is in
  // overlayfs form: an OCI whiteout ".wh.NAME" has become a character device
  // 0:0 named NAME, an opaque directory (".wh..wh..opq") carries the xattrs
  // "trusted.overlay.opaque" and "user.overlay.opaque" = "y". The directories
  // are shared between tasks and must never be written (mount them
  // read-only; a task's writes go to a per-task upper layer or copy).
  // Owned by uid/gid as in the image (0 unless the layer says otherwise).
  std::vector<std::string> layer_dirs;
  // From the image config: "KEY=VALUE" entries, the working directory ("" =
  // "/"), and the user ("" = root; "uid", "uid:gid", or a name the executor
  // resolves from the image's /etc/passwd and /etc/group).
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
};

class ImageAccess {
 public:
  virtual ~ImageAccess() = default;
  // Makes the image `reference` ("name@sha256:…"; a tag is refused: the engine
  // pins images before the cache key is computed) available on this host,
  // fetching and unpacking what is missing. Errors name the reference and
  // what failed (not found, digest mismatch, refused layer entry, …); the
  // executor fails the task with them and never falls back to the host.
  virtual absl::StatusOr<PreparedImage> Prepare(
      const std::string& reference) = 0;
};

}  // namespace kiln

#endif  // KILN_EXECUTORS_IMAGE_ACCESS_H_
