// The identity an image-mode task runs as: the image config's `user`
// resolved against the image's own /etc/passwd and /etc/group, read from
// the prepared layer directories (top layer first, whiteouts and opaque
// directories honoured) without following any symlink: the layers are the
// content of an image, i.e. untrusted.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_IMAGE_USER_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_IMAGE_USER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln {
namespace sandbox {

// /etc/passwd and /etc/group larger than this are refused.
inline constexpr size_t kMaxImageAccountFileBytes = 4 << 20;

struct ImageIdentity {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary, sorted, without gid
};

// The content of `relative` (e.g. "etc/passwd") as the overlay of
// `layer_dirs` (bottom first) shows it. NotFound when it does not exist
// (or is whited out); FailedPrecondition when a path component is a symlink
// or the file is not a regular file or is too large.
absl::StatusOr<std::string> ReadImageFile(
    const std::vector<std::string>& layer_dirs, const std::string& relative);

// Resolves `user` ("" = root; "uid", "name", "uid:gid", "name:group", ...):
//   - a name must exist in /etc/passwd (a group name in /etc/group);
//   - without a group, the gid is the passwd entry's (0 for a numeric uid
//     the image does not list) and the supplementary groups are those of
//     /etc/group that list the user's name; with a group, there are none.
// Errors (InvalidArgument/NotFound/FailedPrecondition) name the user.
absl::StatusOr<ImageIdentity> ResolveImageUser(
    const std::vector<std::string>& layer_dirs, const std::string& user);

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_IMAGE_USER_H_
