#include "engine/store/run_id.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kiln::store {

std::string NewRunId(absl::Time now) {
  // random_device reads the kernel's entropy (getrandom); ids from two
  // processes in the same microsecond still differ.
  thread_local std::random_device entropy;
  uint32_t random = entropy();
  return absl::StrCat(
      "r", absl::FormatTime("%Y%m%d-%H%M%S-%E6f", now, absl::UTCTimeZone()),
      absl::StrFormat("-%08x", random));
}

bool IsValidRunId(absl::string_view id) {
  // r YYYYMMDD - HHMMSS - ffffff - xxxxxxxx
  static constexpr absl::string_view kShape =
      "r########-######-######-hhhhhhhh";
  if (id.size() != kShape.size()) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    char want = kShape[i], got = id[i];
    if (want == '#' && !absl::ascii_isdigit(got)) return false;
    if (want == 'h' &&
        !(absl::ascii_isdigit(got) || (got >= 'a' && got <= 'f')))
      return false;
    if (want != '#' && want != 'h' && want != got) return false;
  }
  return true;
}

}  // namespace kiln::store
