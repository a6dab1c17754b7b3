#include "engine/oci/registry/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace kiln::oci::registry {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

}  // namespace

std::string NormalizeRegistryKey(absl::string_view key) {
  absl::string_view k = absl::StripAsciiWhitespace(key);
  if (!absl::ConsumePrefix(&k, "https://")) absl::ConsumePrefix(&k, "http://");
  k = k.substr(0, k.find('/'));
  std::string out = absl::AsciiStrToLower(k);
  if (out == "index.docker.io" || out == "registry-1.docker.io" ||
      out == "registry.hub.docker.com") {
    out = "docker.io";
  }
  return out;
}

absl::StatusOr<CredentialsMap> ParseDockerConfig(absl::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr,
                                             /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(
        "docker config: not a JSON object (contents not shown)");
  }
  CredentialsMap out;
  auto auths = doc.find("auths");
  if (auths == doc.end()) return out;
  if (!auths->is_object()) {
    return absl::InvalidArgumentError(
        "docker config: 'auths' is not an object");
  }
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    const std::string key = NormalizeRegistryKey(it.key());
    if (!it.value().is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "docker config: the entry for '", key, "' is not an object"));
    }
    const nlohmann::json& e = it.value();
    auto str = [&](const char* name) -> std::string {
      auto f = e.find(name);
      return f != e.end() && f->is_string() ? f->get<std::string>() : "";
    };
    Credentials c;
    std::string auth = str("auth");
    if (!auth.empty()) {
      std::string decoded;
      if (!absl::Base64Unescape(auth, &decoded)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "docker config: the 'auth' of '", key, "' is not base64"));
      }
      size_t colon = decoded.find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("docker config: the 'auth' of '", key,
                         "' is not base64 of user:password"));
      }
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    }
    if (c.username.empty()) c.username = str("username");
    if (c.password.empty()) c.password = str("password");
    c.identity_token = str("identitytoken");
    if (!c.empty()) out[key] = std::move(c);
  }
  return out;
}

absl::StatusOr<CredentialsMap> LoadDockerConfig(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    std::string msg =
        absl::StrCat("docker config '", path, "': ", strerror(errno));
    return errno == ENOENT ? absl::NotFoundError(msg)
                           : absl::FailedPreconditionError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<size_t>(st.st_size) > kMaxConfigBytes) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "docker config '", path, "': not a regular file of at most 1 MiB"));
  }
  std::string bytes;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) bytes.append(buf, n);
    if (bytes.size() > kMaxConfigBytes) break;
  }
  int err = errno;
  close(fd);
  if (n < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("docker config '", path, "': ", strerror(err)));
  }
  absl::StatusOr<CredentialsMap> parsed = ParseDockerConfig(bytes);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

std::vector<Challenge> ParseChallenges(absl::string_view h) {
  std::vector<Challenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t')) ++i;
  };
  auto token = [&] {
    size_t start = i;
    while (i < h.size() && IsTokenChar(h[i])) ++i;
    return std::string(h.substr(start, i - start));
  };
  while (i < h.size()) {
    skip_ws();
    while (i < h.size() && h[i] == ',') {
      ++i;
      skip_ws();
    }
    std::string scheme = token();
    if (scheme.empty()) break;
    Challenge c;
    c.scheme = absl::AsciiStrToLower(scheme);
    // auth-params: name=value or name="quoted", comma-separated; a name
    // followed by a space and no '=' starts the next challenge.
    while (true) {
      skip_ws();
      size_t mark = i;
      std::string name = token();
      skip_ws();
      if (name.empty() || i >= h.size() || h[i] != '=') {
        i = mark;
        break;
      }
      ++i;
      skip_ws();
      std::string value;
      if (i < h.size() && h[i] == '"') {
        ++i;
        bool closed = false;
        while (i < h.size()) {
          char ch = h[i++];
          if (ch == '\\' && i < h.size()) {
            value.push_back(h[i++]);
          } else if (ch == '"') {
            closed = true;
            break;
          } else {
            value.push_back(ch);
          }
        }
        if (!closed) return {};
      } else {
        value = token();
      }
      c.params[absl::AsciiStrToLower(name)] = value;
      skip_ws();
      if (i < h.size() && h[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    out.push_back(std::move(c));
    if (i < h.size() && h[i] != ',' && !IsTokenChar(h[i]) && h[i] != ' ') {
      break;
    }
  }
  return out;
}

std::string BasicAuthorization(const Credentials& credentials) {
  return absl::StrCat("Basic ",
                      absl::Base64Escape(absl::StrCat(credentials.username, ":",
                                                      credentials.password)));
}

}  // namespace kiln::oci::registry
