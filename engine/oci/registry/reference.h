// Image references in the Docker grammar ("[registry/]path[:tag][@digest]"),
// as `docker pull` and skopeo's docker:// transport read them.
//
// The registry is the first path component when it contains '.' or ':' or is
// "localhost"; otherwise it is docker.io, where a single-component path gets
// the "library/" prefix ("debian" → docker.io/library/debian). Path
// components are lowercase; tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127};
// digests are sha256 only (what kiln can verify).
#ifndef KILN_ENGINE_OCI_REGISTRY_REFERENCE_H_
#define KILN_ENGINE_OCI_REGISTRY_REFERENCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::oci::registry {

inline constexpr char kDockerHub[] = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "127.0.0.1:5000", "[::1]:5000"
  std::string repository;  // "library/debian", "team/app"
  std::string tag;         // "" when the reference names none
  std::string digest;      // "sha256:<hex>", "" when none

  // "registry/repository".
  std::string Name() const;
  // The digest when given, else the tag, else "latest".
  std::string TagOrDigest() const;
  // The canonical text: Name() plus ":tag" and/or "@digest".
  std::string ToString() const;
};

// InvalidArgument naming the reference and what is wrong with it.
absl::StatusOr<Reference> ParseReference(absl::string_view text);

// Host part of a registry ("127.0.0.1" of "127.0.0.1:5000", "::1" of
// "[::1]:5000").
std::string RegistryHost(absl::string_view registry);
// True for localhost, 127.0.0.0/8 and ::1: plain HTTP is allowed there.
bool IsLoopbackRegistry(absl::string_view registry);

}  // namespace kiln::oci::registry

#endif  // KILN_ENGINE_OCI_REGISTRY_REFERENCE_H_
