// Registry credentials and the HTTP authentication challenge.
//
// Credentials come from a credentials map (kiln secrets, given by the
// caller) or a docker config.json ("auths": {"host": {"auth": base64
// "user:password"} or {"username", "password"}}, "identitytoken"). Credential
// helpers (credsStore / credHelpers) are not run: kiln runs as root and does
// not execute programs named by a config file. Nothing here logs or puts a
// secret in a Status message.
#ifndef KILN_ENGINE_OCI_REGISTRY_AUTH_H_
#define KILN_ENGINE_OCI_REGISTRY_AUTH_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::oci::registry {

struct Credentials {
  std::string username;
  std::string password;
  // An OAuth2 refresh token (docker config "identitytoken"): exchanged at
  // the token realm instead of username/password.
  std::string identity_token;
  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty();
  }
};

// registry ("host[:port]", "docker.io" for Docker Hub) → credentials.
using CredentialsMap = std::map<std::string, Credentials>;

// Reads the "auths" of a docker config.json. Keys are normalised to
// "host[:port]" ("https://index.docker.io/v1/" → "docker.io"). NotFound when
// the file does not exist; InvalidArgument for a malformed file (never
// quoting credential values).
absl::StatusOr<CredentialsMap> LoadDockerConfig(const std::string& path);
absl::StatusOr<CredentialsMap> ParseDockerConfig(absl::string_view json);

// "https://host:port/v1/" → "host:port"; Docker Hub aliases → "docker.io".
std::string NormalizeRegistryKey(absl::string_view key);

// One challenge of a WWW-Authenticate header: `Bearer realm="…",
// service="…",scope="…"` → scheme "bearer" (lowercased), params with
// lowercased names.
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
// Parses a WWW-Authenticate value (one or more challenges). Returns an empty
// list for a value it cannot parse.
std::vector<Challenge> ParseChallenges(absl::string_view header);

// "Basic base64(user:password)".
std::string BasicAuthorization(const Credentials& credentials);

}  // namespace kiln::oci::registry

#endif  // KILN_ENGINE_OCI_REGISTRY_AUTH_H_
