#include "engine/kinds/task_results.h"

#include <cstdint>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kiln::kinds {

bool IsUtf8(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong lead (C0, C1) or > F4
    }
    if (n - i <= static_cast<size_t>(extra)) return false;
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

absl::StatusOr<std::map<std::string, std::string>> CheckTaskResults(
    const google::protobuf::RepeatedPtrField<std::string>& declared,
    const google::protobuf::Map<std::string, std::string>& written) {
  std::set<std::string> names(declared.begin(), declared.end());
  for (const auto& [name, value] : written) {
    if (names.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "$KILN_RESULTS/", absl::CHexEscape(name.substr(0, 80)),
          " is not a declared result (declared: ",
          names.empty() ? std::string("none") : absl::StrJoin(names, ", "),
          ")"));
    }
  }
  std::map<std::string, std::string> out;
  for (const std::string& name : names) {
    auto it = written.find(name);
    if (it == written.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("declared result '", name,
                       "' was not written (the command must write it to "
                       "$KILN_RESULTS/",
                       name, ")"));
    }
    std::string value = it->second;
    if (!IsUtf8(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("result '", name, "' is not valid UTF-8 text"));
    }
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("result '", name, "' contains a NUL byte"));
    }
    if (!value.empty() && value.back() == '\n') {
      value.pop_back();
      if (!value.empty() && value.back() == '\r') value.pop_back();
    }
    out[name] = std::move(value);
  }
  return out;
}

}  // namespace kiln::kinds
