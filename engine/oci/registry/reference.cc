#include "engine/oci/registry/reference.h"

#include <arpa/inet.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/cas/digest.h"

namespace kiln::oci::registry {
namespace {

constexpr size_t kMaxReferenceBytes = 4096;
constexpr size_t kMaxNameBytes = 255;  // registry/repository, as Docker's
constexpr size_t kMaxTagBytes = 128;

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool IsPathComponent(absl::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) {
    return false;
  }
  size_t i = 0;
  while (i < s.size()) {
    if (IsLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !IsLowerAlnum(s[j])) ++j;
    absl::string_view sep = s.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == absl::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

bool IsHostLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

bool IsPort(absl::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  int port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port > 0 && port <= 65535;
}

// host[:port], host = dns labels or [ipv6].
bool IsRegistry(absl::string_view s) {
  absl::string_view host = s;
  absl::string_view port;
  if (absl::StartsWith(s, "[")) {
    size_t close = s.find(']');
    if (close == absl::string_view::npos) return false;
    std::string v6(s.substr(1, close - 1));
    in6_addr addr;
    if (inet_pton(AF_INET6, v6.c_str(), &addr) != 1) return false;
    absl::string_view rest = s.substr(close + 1);
    if (rest.empty()) return true;
    return absl::StartsWith(rest, ":") && IsPort(rest.substr(1));
  }
  size_t colon = s.rfind(':');
  if (colon != absl::string_view::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (!IsPort(port)) return false;
  }
  if (host.empty() || host.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (!IsHostLabel(label)) return false;
  }
  return true;
}

bool IsTag(absl::string_view s) {
  if (s.empty() || s.size() > kMaxTagBytes) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool word = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

absl::Status Bad(absl::string_view text, absl::string_view why) {
  std::string shown(text.substr(0, 200));
  if (text.size() > 200) shown += "…";
  return absl::InvalidArgumentError(
      absl::StrCat("image reference '", shown, "': ", why));
}

}  // namespace

std::string Reference::Name() const {
  return absl::StrCat(registry, "/", repository);
}

std::string Reference::TagOrDigest() const {
  if (!digest.empty()) return digest;
  if (!tag.empty()) return tag;
  return "latest";
}

std::string Reference::ToString() const {
  std::string out = Name();
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  if (text.empty()) return Bad(text, "empty");
  if (text.size() > kMaxReferenceBytes) return Bad(text, "too long");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return Bad(text, "contains whitespace or a control character");
    }
  }
  Reference ref;
  absl::string_view rest = text;
  size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    absl::string_view digest = rest.substr(at + 1);
    if (!absl::StartsWith(digest, "sha256:")) {
      return Bad(text, "the digest must be sha256:<64 hex digits>");
    }
    if (!cas::Digest::Parse(digest).ok()) {
      return Bad(text, "malformed digest (sha256:<64 lowercase hex digits>)");
    }
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  // A tag is after the last ':' that follows the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos &&
      (slash == absl::string_view::npos || colon > slash)) {
    absl::string_view tag = rest.substr(colon + 1);
    if (!IsTag(tag)) {
      return Bad(text, absl::StrCat("malformed tag '", tag.substr(0, 200),
                                    "' (letters, digits, '_', '.', '-'; at "
                                    "most 128; not starting with '.' or '-')"));
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Bad(text, "no repository name");
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  absl::string_view first = parts.front();
  bool has_registry = parts.size() > 1 &&
                      (first.find('.') != absl::string_view::npos ||
                       first.find(':') != absl::string_view::npos ||
                       first == "localhost" || absl::StartsWith(first, "["));
  if (has_registry) {
    if (!IsRegistry(first)) {
      return Bad(text, absl::StrCat("malformed registry '", first, "'"));
    }
    ref.registry = std::string(first);
    parts.erase(parts.begin());
  } else {
    ref.registry = kDockerHub;
  }
  if (ref.registry == "index.docker.io" ||
      ref.registry == "registry-1.docker.io") {
    ref.registry = kDockerHub;
  }
  for (absl::string_view p : parts) {
    if (!IsPathComponent(p)) {
      return Bad(text, absl::StrCat("malformed repository component '",
                                    p.substr(0, 200),
                                    "' (lowercase letters and digits, "
                                    "separated by '.', '_', '__' or '-')"));
    }
  }
  ref.repository = absl::StrJoin(parts, "/");
  if (ref.registry == kDockerHub && parts.size() == 1) {
    ref.repository = absl::StrCat("library/", ref.repository);
  }
  if (ref.Name().size() > kMaxNameBytes) {
    return Bad(text, "name longer than 255 characters");
  }
  return ref;
}

std::string RegistryHost(absl::string_view registry) {
  if (absl::StartsWith(registry, "[")) {
    size_t close = registry.find(']');
    if (close != absl::string_view::npos) {
      return std::string(registry.substr(1, close - 1));
    }
  }
  size_t colon = registry.rfind(':');
  if (colon != absl::string_view::npos) {
    return std::string(registry.substr(0, colon));
  }
  return std::string(registry);
}

bool IsLoopbackRegistry(absl::string_view registry) {
  std::string host = absl::AsciiStrToLower(RegistryHost(registry));
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

}  // namespace kiln::oci::registry
