// Unpacking one image layer into the layer cache, safely.
//
// A layer blob (plain, gzip or zstd tar, by its media type) comes from a
// registry or a layout that kiln does not trust, and kiln runs as root. The
// layer is unpacked into a fresh private directory next to its final name,
// with *at() calls relative to open directory fds and O_NOFOLLOW, and only
// renamed into place once every check passed:
//   - absolute paths, ".." components, empty paths: refused;
//   - an entry below a symlink, a file or a whiteout of this layer: refused
//     (nothing is ever written through a symlink, absolute or not; symlink
//     targets are stored verbatim and resolve inside the container);
//   - character/block devices and sockets: refused (FIFOs are created);
//   - hardlinks: only to a file or symlink earlier in the same layer, linked
//     beneath the layer root without following links; anything else
//     (absolute, "..", a lower layer's file, a directory) is refused;
//   - setuid/setgid bits: stripped (LayerLimits::setuid = kStrip, the
//     default) or the layer refused (kRefuse); sticky bits are kept;
//   - duplicate entries (other than a directory listed again): refused;
//   - more than max_entries entries, more than max_layer_bytes of file
//     content, a path longer than max_path_length, an uncompressed stream
//     longer than the content bound plus headers, or one that expands more
//     than max_expansion_ratio times its compressed bytes once past
//     expansion_grace_bytes: ResourceExhausted, while the stream is read
//     (a zero bomb stops after about expansion_grace_bytes);
//   - the uncompressed stream's digest must equal the config's diff_id and
//     the compressed bytes' digest and size the descriptor's (DataLoss).
// Owners (uid/gid), permission bits and mtimes are taken from the layer; no
// xattrs are (file capabilities and SELinux labels are dropped).
//
// OCI whiteouts become overlayfs whiteouts (executors/image_access.h):
// ".wh.NAME" becomes a character device 0:0 named NAME; ".wh..wh..opq"
// marks its directory opaque with the xattrs "trusted.overlay.opaque" and
// "user.overlay.opaque" = "y" (the trusted one is skipped with EPERM, i.e.
// when not privileged in the initial user namespace; the user one is
// required). Other ".wh..wh." names (AUFS metadata) and a whiteout of an
// entry the same layer creates are refused.
//
// Thread-safe (no shared state); concurrent unpacks of one layer into one
// parent (threads or processes) are safe: each builds its own private
// directory, the first rename wins and the others discard theirs.
#ifndef KILN_ENGINE_IMAGE_LAYER_UNPACK_H_
#define KILN_ENGINE_IMAGE_LAYER_UNPACK_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace kiln::image {

struct LayerLimits {
  // File content per layer.
  int64_t max_layer_bytes = int64_t{16} << 30;
  int64_t max_entries = 1 << 20;
  size_t max_path_length = 4096;
  // Uncompressed bytes per compressed byte, checked once the uncompressed
  // stream is past expansion_grace_bytes; 0: not checked. Real layers
  // compress 2-10x; a run of zeros compresses ~1000x with gzip.
  int64_t max_expansion_ratio = 100;
  int64_t expansion_grace_bytes = int64_t{64} << 20;
  enum class Setuid { kStrip, kRefuse };
  Setuid setuid = Setuid::kStrip;
};

// The layer as the manifest and config describe it.
struct LayerBlob {
  std::string media_type;  // an OCI or Docker layer media type
  std::string digest;      // "sha256:…" of the compressed blob
  int64_t size = 0;        // of the compressed blob
  std::string diff_id;     // "sha256:…" of the uncompressed tar
};

struct UnpackOptions {
  LayerLimits limits;
  // Decompress on a second thread, overlapping with writing the files.
  bool prefetch = true;
  // Test hook: called after each entry is created, with the private
  // directory's path.
  std::function<void(const std::string& private_dir)> after_entry_for_testing;
};

// Unpacks the blob read from blob_fd (from offset 0 to its end) into the
// new directory `name` (one component) of parent_fd, as described above.
// If `name` already exists (another unpacker won), the work is discarded
// and OK returned. On error nothing is left behind. `shown_parent` names
// parent_fd in messages. Errors name the layer's digest.
absl::Status UnpackLayer(int blob_fd, const LayerBlob& blob, int parent_fd,
                         const std::string& name,
                         const std::string& shown_parent,
                         const UnpackOptions& options);

}  // namespace kiln::image

#endif  // KILN_ENGINE_IMAGE_LAYER_UNPACK_H_
