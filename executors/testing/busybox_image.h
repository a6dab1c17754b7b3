// A test ImageAccess: images whose layers are directories built in a test's
// temporary directory, the base layer from the host's statically linked
// busybox (Debian's busybox-static, /bin/busybox). Nothing is downloaded.
// Layers are in overlayfs form as ImageAccess promises (whiteouts are 0:0
// character devices, opaque directories carry user.overlay.opaque and,
// where the kernel allows it, trusted.overlay.opaque). Thread-safe.
#ifndef KILN_EXECUTORS_TESTING_BUSYBOX_IMAGE_H_
#define KILN_EXECUTORS_TESTING_BUSYBOX_IMAGE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "executors/image_access.h"

namespace kiln {
namespace conformance {

// The statically linked busybox the base layer is made of.
inline constexpr char kHostBusybox[] = "/bin/busybox";

// The base layer's accounts: root (0:0), builder (1000:1000, also in group
// tools 2000), nobody (65534:65534).
inline constexpr char kBusyboxPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "builder:x:1000:1000:builder:/home/builder:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
inline constexpr char kBusyboxGroup[] =
    "root:x:0:\n"
    "builder:x:1000:\n"
    "tools:x:2000:builder\n"
    "nogroup:x:65534:\n";

// "<name>@sha256:" + 64 hex digits derived from `name` (not a real digest;
// the test access only needs the pinned form).
std::string TestReference(const std::string& name);

class BusyboxImageAccess : public ImageAccess {
 public:
  // Layers are made under `root` (an existing, empty directory).
  explicit BusyboxImageAccess(std::string root);

  // A new layer directory named `name` (unique), empty.
  absl::StatusOr<std::string> NewLayer(const std::string& name);
  // A new layer with busybox at /bin/busybox, links for its applets in /bin
  // (and /usr/bin/env), /etc/passwd and /etc/group as above, /tmp (1777),
  // /root and /home/builder (1000:1000).
  absl::StatusOr<std::string> BusyboxLayer(const std::string& name);

  // Prepare(reference) returns `image` (its reference is set to it).
  void Add(const std::string& reference, PreparedImage image);
  // Prepare(reference) fails with `status`.
  void AddFailing(const std::string& reference, absl::Status status);
  // How often Prepare was called.
  int prepare_calls() const;

  // Refuses a reference without "@sha256:" (InvalidArgument, as the engine
  // pins images first); NotFound for an unknown one.
  absl::StatusOr<PreparedImage> Prepare(const std::string& reference) override;

 private:
  const std::string root_;
  mutable Mutex mu_;
  std::map<std::string, absl::StatusOr<PreparedImage>> images_
      ABSL_GUARDED_BY(mu_);
  int prepare_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Layer content helpers (paths relative to the layer; parents are made).
absl::Status WriteLayerFile(const std::string& layer, const std::string& path,
                            const std::string& content, mode_t mode = 0644);
// A whiteout: `path` hides what lower layers have there.
absl::Status MakeWhiteout(const std::string& layer, const std::string& path);
// An opaque directory: lower layers' entries below `path` are hidden.
absl::Status MakeOpaqueDir(const std::string& layer, const std::string& path);

// Every entry below `dir` as "path mode uid:gid size [content digest]",
// sorted, for checking that a layer was not changed.
std::vector<std::string> TreeSnapshot(const std::string& dir);

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_BUSYBOX_IMAGE_H_
