#include "kube/names.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace kiln::kube {
namespace {

constexpr size_t kMaxLabel = 63;
constexpr size_t kHashChars = 10;

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// FNV-1a 64, rendered in base 36: stable across platforms and releases (the
// label names pods that must be found again after a restart).
std::string Hash(absl::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out;
  for (size_t i = 0; i < kHashChars; ++i) {
    out.push_back(kDigits[h % 36]);
    h /= 36;
  }
  return out;
}

}  // namespace

bool IsDnsLabel(absl::string_view name) {
  if (name.empty() || name.size() > kMaxLabel) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return IsLowerAlnum(name.front()) && IsLowerAlnum(name.back());
}

std::string DnsLabel(absl::string_view base) {
  if (IsDnsLabel(base)) return std::string(base);
  std::string mapped;
  for (char c : base) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    mapped.push_back(IsLowerAlnum(c) ? c : '-');
  }
  // Room for "-" + hash; no leading or trailing '-' around it.
  size_t keep = kMaxLabel - kHashChars - 1;
  if (mapped.size() > keep) mapped.resize(keep);
  size_t start = mapped.find_first_not_of('-');
  if (start == std::string::npos) return Hash(base);
  size_t end = mapped.find_last_not_of('-');
  return absl::StrCat(mapped.substr(start, end - start + 1), "-", Hash(base));
}

std::string NamespacesPath() { return "/api/v1/namespaces"; }
std::string NamespacePath(absl::string_view name) {
  return absl::StrCat("/api/v1/namespaces/", name);
}
std::string PodsPath(absl::string_view ns) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/pods");
}
std::string PodPath(absl::string_view ns, absl::string_view name) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/pods/", name);
}
std::string SecretsPath(absl::string_view ns) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/secrets");
}
std::string SecretPath(absl::string_view ns, absl::string_view name) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/secrets/", name);
}
std::string ConfigMapsPath(absl::string_view ns) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/configmaps");
}
std::string EventsPath(absl::string_view ns) {
  return absl::StrCat("/api/v1/namespaces/", ns, "/events");
}

}  // namespace kiln::kube
