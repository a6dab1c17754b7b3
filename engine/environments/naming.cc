#include "engine/environments/naming.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace kiln::environments {
namespace {

bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

std::string Hash10(absl::string_view raw) {
  uint64_t h = 14695981039346656037ull;
  for (char c : raw) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return absl::StrFormat("%010x", h & 0xffffffffffull);
}

}  // namespace

std::string NamespaceName(absl::string_view raw) {
  std::string out;
  for (char c : raw) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (IsLabelChar(c)) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.empty()) return "env-" + Hash10(raw);
  if (out.size() > kMaxNamespaceLength) {
    out.resize(kMaxNamespaceLength - 11);
    while (!out.empty() && out.back() == '-') out.pop_back();
    out += "-" + Hash10(raw);
  }
  return out;
}

bool IsNamespaceName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNamespaceLength) return false;
  for (char c : name) {
    if (!IsLabelChar(c) && c != '-') return false;
  }
  return name.front() != '-' && name.back() != '-';
}

}  // namespace kiln::environments
