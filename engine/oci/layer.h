// Deterministic image layers from artifact trees.
//
// A layer is a tar stream of the tree below a directory placed at `to` in
// the image: the parent directories of `to` (root-owned, 0755), `to`
// itself, then every entry depth-first with names sorted bytewise. Headers
// are POSIX ustar (pax records only for long paths/targets or huge sizes),
// with a fixed mtime (SOURCE_DATE_EPOCH or 0), the layer's uid/gid (0
// unless set), empty user/group names, no xattrs, and normalized modes:
// directories 0755, symlinks 0777, files 0755 if executable else 0644 —
// or every file `file_mode` when the layer sets one. Hard links are
// written as separate files. Nothing depends on the host's umask, TZ,
// mtimes, owners or directory listing order (tested).
//
// The tree is hostile input: it is walked without following a symlink
// (symlinks are stored as links, wherever they point), FIFOs, sockets and
// devices are refused naming the path, and a file that changes size while
// it is read fails the layer.
//
// diff_id = sha256 of the uncompressed tar; the descriptor's digest and
// size are those of the compressed blob (gzip.h: parallel multi-member
// gzip by default; zstd; or the plain tar).
#ifndef KILN_ENGINE_OCI_LAYER_H_
#define KILN_ENGINE_OCI_LAYER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/oci/spec.h"

namespace kiln::oci {

enum class Compression { kGzip, kZstd, kNone };

// "gzip" (also ""), "zstd", "none" (also "uncompressed").
absl::StatusOr<Compression> ParseCompression(absl::string_view text);
// The OCI layer media type for `c`.
const char* LayerMediaType(Compression c);

struct LayerSource {
  int root_fd = -1;      // the tree (opened by the caller beneath its root)
  std::string display;   // names the tree in errors
  std::string to = "/";  // absolute directory in the image
  int file_mode = -1;    // 0..0777; -1: 0755 if executable else 0644
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct LayerOptions {
  Compression compression = Compression::kGzip;
  int64_t mtime = 0;  // seconds since the epoch, >= 0
  int workers = 2;    // compression threads (the bytes do not depend on it)
};

struct BuiltLayer {
  Descriptor descriptor;  // media type, digest and size of the blob
  std::string diff_id;    // "sha256:…" of the uncompressed tar
  int64_t tar_bytes = 0;
  int64_t files = 0;
};

// Writes the layer blob to out_fd (from its current offset).
absl::StatusOr<BuiltLayer> WriteLayer(const LayerSource& source,
                                      const LayerOptions& options, int out_fd);

// "/a/b/" -> "a/b"; "/" -> "". InvalidArgument unless absolute and free of
// "." / ".." components and NUL bytes.
absl::StatusOr<std::string> NormalizeImagePath(absl::string_view to);

}  // namespace kiln::oci

#endif  // KILN_ENGINE_OCI_LAYER_H_
