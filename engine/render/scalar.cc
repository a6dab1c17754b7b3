#include "engine/render/scalar.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace kiln::render {
namespace {

enum class IntParse { kNo, kSigned, kUnsigned };

// Go's strconv.ParseInt/ParseUint with base 0 (prefixes 0x 0o 0b and a bare
// leading 0 for octal), after go-yaml removed every '_'.
IntParse ParseGoInt(absl::string_view s, std::string* decimal) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return IntParse::kNo;
  int base = 10;
  if (s.size() > 1 && s[0] == '0') {
    char p = absl::ascii_tolower(s[1]);
    if (p == 'x') {
      base = 16;
      s.remove_prefix(2);
    } else if (p == 'o') {
      base = 8;
      s.remove_prefix(2);
    } else if (p == 'b') {
      base = 2;
      s.remove_prefix(2);
    } else {
      base = 8;
      s.remove_prefix(1);
    }
    if (s.empty()) return IntParse::kNo;
  }
  unsigned __int128 acc = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'z') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'Z') {
      d = c - 'A' + 10;
    } else {
      return IntParse::kNo;
    }
    if (d >= base) return IntParse::kNo;
    acc = acc * base + d;
    if (acc > (static_cast<unsigned __int128>(1) << 64)) return IntParse::kNo;
  }
  if (neg) {
    if (acc > (static_cast<unsigned __int128>(1) << 63)) return IntParse::kNo;
    if (acc == 0) {
      *decimal = "0";
    } else {
      *decimal = absl::StrCat("-", static_cast<uint64_t>(acc));
    }
    return IntParse::kSigned;
  }
  if (acc > UINT64_MAX) return IntParse::kNo;
  *decimal = absl::StrCat(static_cast<uint64_t>(acc));
  return acc > INT64_MAX ? IntParse::kUnsigned : IntParse::kSigned;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
bool IsYamlFloat(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return false;
  } else {
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && IsDigit(s[i])) ++i;
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (i == start) return false;
  }
  return i == s.size();
}

// Reads 1..max_digits digits at *i.
bool Digits(absl::string_view s, size_t* i, int min_digits, int max_digits,
            int* out) {
  int n = 0, v = 0;
  while (*i < s.size() && IsDigit(s[*i]) && n < max_digits) {
    v = v * 10 + (s[*i] - '0');
    ++*i;
    ++n;
  }
  *out = v;
  return n >= min_digits;
}

// go-yaml v3 timestamps: 2006-1-2, 2006-1-2T15:4:5.999Z07:00 (t too), and
// "2006-1-2 15:4:5.999" (UTC). On success, the RFC 3339 (nano) text.
bool ParseTimestamp(absl::string_view s, std::string* out) {
  size_t i = 0;
  int year, month, day;
  if (!Digits(s, &i, 4, 4, &year) || i >= s.size() || s[i] != '-') {
    return false;
  }
  ++i;
  if (!Digits(s, &i, 1, 2, &month) || i >= s.size() || s[i] != '-') {
    return false;
  }
  ++i;
  if (!Digits(s, &i, 1, 2, &day)) return false;
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  int hour = 0, minute = 0, second = 0;
  std::string frac;
  std::string zone = "Z";
  if (i < s.size()) {
    char sep = s[i];
    if (sep != 'T' && sep != 't' && sep != ' ') return false;
    ++i;
    if (!Digits(s, &i, 1, 2, &hour) || i >= s.size() || s[i] != ':') {
      return false;
    }
    ++i;
    if (!Digits(s, &i, 1, 2, &minute) || i >= s.size() || s[i] != ':') {
      return false;
    }
    ++i;
    if (!Digits(s, &i, 1, 2, &second)) return false;
    if (hour > 23 || minute > 59 || second > 59) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      size_t start = i;
      while (i < s.size() && IsDigit(s[i])) ++i;
      if (i == start) return false;
      frac = std::string(s.substr(start, std::min<size_t>(i - start, 9)));
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
    }
    if (sep == ' ') {
      if (i != s.size()) return false;
    } else {
      if (i >= s.size()) return false;
      if (s[i] == 'Z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        char sign = s[i++];
        int zh, zm;
        if (i + 5 != s.size() + 0 && i + 5 > s.size()) return false;
        if (!Digits(s, &i, 2, 2, &zh) || i >= s.size() || s[i] != ':') {
          return false;
        }
        ++i;
        if (!Digits(s, &i, 2, 2, &zm)) return false;
        if (zh != 0 || zm != 0) {
          char buf[16];
          snprintf(buf, sizeof(buf), "%c%02d:%02d", sign, zh, zm);
          zone = buf;
        }
      } else {
        return false;
      }
      if (i != s.size()) return false;
    }
  }
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", year, month, day,
           hour, minute, second);
  *out = buf;
  if (!frac.empty()) absl::StrAppend(out, ".", frac);
  absl::StrAppend(out, zone);
  return true;
}

enum class Kind { kNull, kBool, kInt, kFloat, kTimestamp, kString, kBadFloat };

Kind Classify(absl::string_view s, Value* out) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    if (out) *out = Value::Null();
    return Kind::kNull;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    if (out) *out = Value::Bool(true);
    return Kind::kBool;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    if (out) *out = Value::Bool(false);
    return Kind::kBool;
  }
  for (absl::string_view special :
       {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
        "-.INF", ".nan", ".NaN", ".NAN"}) {
    if (s == special) return Kind::kBadFloat;
  }
  char c = s[0];
  if (c == '.') {
    if (IsYamlFloat(s)) {
      // ".5e999" overflows to infinity, which JSON cannot hold (as below).
      double d = strtod(std::string(s).c_str(), nullptr);
      if (std::isinf(d)) return Kind::kBadFloat;
      if (out) *out = Value::Float(d);
      return Kind::kFloat;
    }
    return Kind::kString;
  }
  if (!(IsDigit(c) || c == '+' || c == '-')) return Kind::kString;
  if (IsDigit(c)) {
    std::string ts;
    if (ParseTimestamp(s, &ts)) {
      if (out) *out = Value::Str(ts);
      return Kind::kTimestamp;
    }
  }
  std::string plain = absl::StrReplaceAll(s, {{"_", ""}});
  std::string decimal;
  if (ParseGoInt(plain, &decimal) != IntParse::kNo) {
    if (out) *out = Value::IntText(decimal);
    return Kind::kInt;
  }
  if (IsYamlFloat(plain)) {
    double d = strtod(plain.c_str(), nullptr);
    if (std::isinf(d)) return Kind::kBadFloat;
    if (out) *out = Value::Float(d);
    return Kind::kFloat;
  }
  return Kind::kString;
}

bool IsBase60Float(absl::string_view s) {
  // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i >= s.size() || !IsDigit(s[i])) return false;
  ++i;
  while (i < s.size() && (IsDigit(s[i]) || s[i] == '_')) ++i;
  int groups = 0;
  while (i < s.size() && s[i] == ':') {
    ++i;
    if (i < s.size() && s[i] >= '0' && s[i] <= '5' && i + 1 < s.size() &&
        IsDigit(s[i + 1])) {
      i += 2;
    } else if (i < s.size() && IsDigit(s[i])) {
      ++i;
    } else {
      return false;
    }
    ++groups;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && (IsDigit(s[i]) || s[i] == '_')) ++i;
  }
  return i == s.size();
}

bool IsOldBool(absl::string_view s) {
  for (absl::string_view b :
       {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No",
        "NO", "off", "Off", "OFF"}) {
    if (s == b) return true;
  }
  return false;
}

// Shortest decimal digits that read back as d: d = 0.DIGITS x 10^point.
void ShortestDigits(double d, std::string* digits, int* point) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
    if (strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  int exp = atoi(s.c_str() + e + 1);
  digits->clear();
  for (char c : mant) {
    if (IsDigit(c)) digits->push_back(c);
  }
  while (digits->size() > 1 && digits->back() == '0') digits->pop_back();
  *point = exp + 1;
}

std::string FormatF(const std::string& digits, int point) {
  std::string out;
  int nd = static_cast<int>(digits.size());
  if (point <= 0) {
    out = "0." + std::string(-point, '0') + digits;
  } else if (point >= nd) {
    out = digits + std::string(point - nd, '0');
  } else {
    out = digits.substr(0, point) + "." + digits.substr(point);
  }
  return out;
}

std::string FormatE(const std::string& digits, int point, int min_exp_digits) {
  std::string out(1, digits[0]);
  if (digits.size() > 1) out += "." + digits.substr(1);
  int exp = point - 1;
  out += exp < 0 ? "e-" : "e+";
  std::string e = std::to_string(exp < 0 ? -exp : exp);
  while (static_cast<int>(e.size()) < min_exp_digits) e = "0" + e;
  return out + e;
}

}  // namespace

absl::StatusOr<Value> ResolvePlainScalar(absl::string_view text) {
  Value v;
  Kind k = Classify(text, &v);
  if (k == Kind::kBadFloat) {
    return absl::InvalidArgumentError(
        absl::StrCat("json: unsupported value: ", text));
  }
  if (k == Kind::kString) return Value::Str(std::string(text));
  return v;
}

bool StringNeedsDoubleQuotes(absl::string_view s) {
  Kind k = Classify(s, nullptr);
  if (k != Kind::kString) return true;
  return IsBase60Float(s) || IsOldBool(s);
}

std::string FormatNumber(double d) {
  if (d == 0) return "0";
  // Never classified a float (kBadFloat), but a Value can be made of one:
  // spelled as YAML does, never formatted as digits.
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d < 0 ? "-.inf" : ".inf";
  std::string digits;
  int point;
  ShortestDigits(std::fabs(d), &digits, &point);
  std::string sign = d < 0 ? "-" : "";
  double a = std::fabs(d);
  // Go's encoding/json text.
  std::string json = (a < 1e-6 || a >= 1e21) ? FormatE(digits, point, 1)
                                             : FormatF(digits, point);
  // Read back as YAML: an integer if it is one that fits 64 bits.
  if (json.find_first_of(".e") == std::string::npos) {
    std::string decimal;
    if (ParseGoInt(sign + json, &decimal) != IntParse::kNo) return decimal;
  }
  // Else printed with strconv 'g' (shortest): %e below 1e-4 or from 1e6.
  int exp = point - 1;
  if (exp < -4 || exp >= 6) return sign + FormatE(digits, point, 2);
  return sign + FormatF(digits, point);
}

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = s[i];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '<':
      case '>':
      case '&':
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else if (c == 0xE2 && i + 2 < s.size() &&
                   static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
          out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028"
                                                              : "\\u2029";
          i += 2;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

}  // namespace kiln::render
