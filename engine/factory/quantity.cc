#include "engine/factory/quantity.h"

#include <cctype>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"

namespace kiln::factory {
namespace {

constexpr __int128 kMax = static_cast<__int128>(1) << 100;

// Multiplies with an overflow check against kMax.
bool Mul(__int128* v, __int128 factor) {
  if (factor != 0 && (*v > kMax / factor)) return false;
  *v *= factor;
  return true;
}

}  // namespace

std::optional<__int128> ParseQuantity(absl::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  size_t i = 0;
  bool negative = false;
  if (text[i] == '+' || text[i] == '-') {
    negative = text[i] == '-';
    ++i;
  }
  // Digits, optionally with one '.', at least one digit in all.
  __int128 mantissa = 0;
  int fraction_digits = 0;
  int digits = 0;
  bool dot = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    if (++digits > 30) return std::nullopt;
    mantissa = mantissa * 10 + (c - '0');
    if (dot) ++fraction_digits;
  }
  if (digits == 0) return std::nullopt;
  absl::string_view suffix = text.substr(i);
  // The value is mantissa * 10^(exp10 - fraction_digits) * 2^exp2, in
  // nano-units: exp10 starts at 9.
  int exp10 = 9;
  int exp2 = 0;
  static const std::vector<std::pair<absl::string_view, int>> kBinary = {
      {"Ki", 10}, {"Mi", 20}, {"Gi", 30}, {"Ti", 40}, {"Pi", 50}, {"Ei", 60}};
  static const std::vector<std::pair<absl::string_view, int>> kDecimal = {
      {"n", -9}, {"u", -6}, {"m", -3}, {"", 0},   {"k", 3},
      {"M", 6},  {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  bool matched = false;
  for (const auto& [s, e] : kBinary) {
    if (suffix == s) exp2 = e, matched = true;
  }
  for (const auto& [s, e] : kDecimal) {
    if (suffix == s) exp10 += e, matched = true;
  }
  if (!matched && suffix.size() >= 2 &&
      (suffix[0] == 'e' || suffix[0] == 'E')) {
    int e = 0;
    absl::string_view n = suffix.substr(1);
    bool digits_only = !n.empty();
    for (size_t k = (n[0] == '-' || n[0] == '+') ? 1 : 0; k < n.size(); ++k) {
      digits_only =
          digits_only && std::isdigit(static_cast<unsigned char>(n[k])) != 0;
    }
    if (digits_only && n.size() <= 4 && absl::SimpleAtoi(n, &e)) {
      exp10 += e;
      matched = true;
    }
  }
  if (!matched) return std::nullopt;
  __int128 value = mantissa;
  exp10 -= fraction_digits;
  for (int k = 0; k < exp2; ++k) {
    if (!Mul(&value, 2)) return std::nullopt;
  }
  if (exp10 >= 0) {
    for (int k = 0; k < exp10; ++k) {
      if (!Mul(&value, 10)) return std::nullopt;
    }
  } else {
    __int128 divisor = 1;
    for (int k = 0; k < -exp10; ++k) {
      if (!Mul(&divisor, 10))
        return value == 0 ? std::optional<__int128>(0)
                          : std::optional<__int128>(1);
    }
    value = (value + divisor - 1) / divisor;  // round up
  }
  return negative ? -value : value;
}

bool SameQuantity(absl::string_view a, absl::string_view b) {
  std::optional<__int128> x = ParseQuantity(a);
  std::optional<__int128> y = ParseQuantity(b);
  return x.has_value() && y.has_value() && *x == *y;
}

}  // namespace kiln::factory
