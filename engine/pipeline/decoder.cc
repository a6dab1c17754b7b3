#include "engine/pipeline/decoder.h"

#include <cctype>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/suggest.h"

namespace kiln::pipeline::internal {
namespace {

// Durations beyond this are certainly mistakes (and would overflow).
constexpr int64_t kMaxDurationSeconds = 366LL * 24 * 3600;

std::string Describe(const Node& node) {
  if (node.IsScalar()) {
    std::string v = node.value().substr(0, 40);
    return absl::StrCat("a scalar '", v, node.value().size() > 40 ? "..." : "",
                        "'");
  }
  if (node.IsNull()) return "null";
  return absl::StrCat("a ", node.KindName());
}

bool IsPlainBool(const Node& node, bool* out) {
  if (!node.IsScalar() || node.quoted()) return false;
  const std::string& v = node.value();
  if (v == "true" || v == "True" || v == "TRUE") {
    *out = true;
    return true;
  }
  if (v == "false" || v == "False" || v == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

bool ParseDuration(absl::string_view text, int64_t* seconds, int32_t* nanos) {
  if (text == "0") {
    *seconds = 0;
    *nanos = 0;
    return true;
  }
  if (text.empty()) return false;
  int64_t total_ms = 0;
  // Units must appear in decreasing order, each at most once.
  int last_rank = 5;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(text[i])))
      ++i;
    if (i == start || i - start > 9) return false;
    int64_t n = 0;
    if (!absl::SimpleAtoi(text.substr(start, i - start), &n)) return false;
    size_t unit_start = i;
    while (i < text.size() &&
           absl::ascii_isalpha(static_cast<unsigned char>(text[i])))
      ++i;
    absl::string_view unit = text.substr(unit_start, i - unit_start);
    int rank;
    int64_t ms_per_unit;
    if (unit == "h") {
      rank = 4, ms_per_unit = 3600000;
    } else if (unit == "m") {
      rank = 3, ms_per_unit = 60000;
    } else if (unit == "s") {
      rank = 2, ms_per_unit = 1000;
    } else if (unit == "ms") {
      rank = 1, ms_per_unit = 1;
    } else {
      return false;
    }
    if (rank >= last_rank) return false;
    last_rank = rank;
    total_ms += n * ms_per_unit;
    if (total_ms > kMaxDurationSeconds * 1000) return false;
  }
  *seconds = total_ms / 1000;
  *nanos = static_cast<int32_t>((total_ms % 1000) * 1000000);
  return true;
}

void Decoder::Error(const Node& at, std::string message) {
  Diagnostic d;
  d.file = map_->file();
  d.line = at.mark().line;
  d.column = at.mark().column;
  d.message = std::move(message);
  errors_->push_back(std::move(d));
}

void Decoder::Record(const std::string& path, const Node& node) {
  map_->Record(path, node.mark().line, node.mark().column);
}

bool Decoder::ExpectMapping(const Node& node, const std::string& path) {
  Record(path, node);
  if (node.IsMapping()) return true;
  Error(node, absl::StrCat(path, ": expected a mapping, got ", Describe(node)));
  return false;
}

bool Decoder::ExpectSequence(const Node& node, const std::string& path) {
  Record(path, node);
  if (node.IsSequence()) return true;
  Error(node,
        absl::StrCat(path, ": expected a sequence, got ", Describe(node)));
  return false;
}

bool Decoder::String(const Node& node, const std::string& path,
                     std::string* out) {
  Record(path, node);
  if (!node.IsScalar()) {
    Error(node,
          absl::StrCat(path, ": expected a string, got ", Describe(node)));
    return false;
  }
  *out = node.value();
  return true;
}

bool Decoder::Bool(const Node& node, const std::string& path, bool* out) {
  Record(path, node);
  if (IsPlainBool(node, out)) return true;
  Error(node,
        absl::StrCat(path, ": expected true or false, got ", Describe(node)));
  return false;
}

bool Decoder::Uint(const Node& node, const std::string& path, uint64_t max,
                   uint64_t* out) {
  Record(path, node);
  uint64_t v = 0;
  if (!node.IsScalar() || node.quoted() || !AllDigits(node.value()) ||
      !absl::SimpleAtoi(node.value(), &v)) {
    Error(node, absl::StrCat(path, ": expected a non-negative integer, got ",
                             Describe(node)));
    return false;
  }
  if (v > max) {
    Error(node, absl::StrCat(path, ": ", v, " exceeds the maximum of ", max));
    return false;
  }
  *out = v;
  return true;
}

bool Decoder::Duration(const Node& node, const std::string& path,
                       google::protobuf::Duration* out) {
  Record(path, node);
  int64_t seconds = 0;
  int32_t nanos = 0;
  if (!node.IsScalar() || !ParseDuration(node.value(), &seconds, &nanos)) {
    Error(node,
          absl::StrCat(path, ": invalid duration ",
                       node.IsScalar() ? absl::StrCat("'", node.value(), "'")
                                       : Describe(node),
                       "; write e.g. 90s, 10m, 1h30m or 500ms (h, m, s, ms; "
                       "at most 366 days)"));
    return false;
  }
  out->set_seconds(seconds);
  out->set_nanos(nanos);
  return true;
}

bool Decoder::ByteSize(const Node& node, const std::string& path,
                       uint64_t* out) {
  Record(path, node);
  static const std::vector<std::pair<std::string, uint64_t>> kUnits = {
      {"", 1},
      {"k", 1000},
      {"K", 1000},
      {"Ki", 1ULL << 10},
      {"M", 1000000},
      {"Mi", 1ULL << 20},
      {"G", 1000000000},
      {"Gi", 1ULL << 30},
      {"T", 1000000000000ULL},
      {"Ti", 1ULL << 40}};
  if (node.IsScalar()) {
    const std::string& v = node.value();
    size_t digits = 0;
    while (digits < v.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(v[digits])))
      ++digits;
    uint64_t n = 0;
    if (digits > 0 && digits <= 15 &&
        absl::SimpleAtoi(v.substr(0, digits), &n)) {
      std::string unit = v.substr(digits);
      if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
      for (const auto& [name, factor] : kUnits) {
        if (unit == name &&
            n <= std::numeric_limits<uint64_t>::max() / factor) {
          *out = n * factor;
          return true;
        }
      }
    }
  }
  Error(node,
        absl::StrCat(path, ": invalid size ",
                     node.IsScalar() ? absl::StrCat("'", node.value(), "'")
                                     : Describe(node),
                     "; write e.g. 1048576, 512Mi or 2G"));
  return false;
}

bool Decoder::Enum(const Node& node, const std::string& path,
                   const EnumNames& names, absl::string_view what, int* out) {
  Record(path, node);
  std::vector<std::string> spellings;
  for (const auto& [name, value] : names) spellings.push_back(name);
  if (node.IsScalar()) {
    std::string v = absl::AsciiStrToLower(node.value());
    for (const auto& [name, value] : names) {
      if (v == name) {
        *out = value;
        return true;
      }
    }
    Error(node, absl::StrCat(path, ": unknown ", what, " '", node.value(),
                             "'; allowed: ", absl::StrJoin(spellings, ", "),
                             DidYouMean(v, spellings)));
    return false;
  }
  Error(node, absl::StrCat(path, ": expected a ", what, " (one of ",
                           absl::StrJoin(spellings, ", "), "), got ",
                           Describe(node)));
  return false;
}

void Decoder::StringList(const Node& node, const std::string& path,
                         google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    std::string value;
    if (String(node.items()[i], Index(path, i), &value)) {
      *out->Add() = std::move(value);
    }
  }
}

Fields::Fields(Decoder* decoder, const Node& mapping, std::string path,
               std::vector<std::string> allowed)
    : mapping_(&mapping), path_(std::move(path)) {
  ok_ = decoder->ExpectMapping(mapping, path_);
  if (!ok_) return;
  for (const auto& [key, value] : mapping.entries()) {
    bool known = false;
    for (const std::string& a : allowed) known = known || a == key.value();
    if (known) continue;
    std::string where = path_.empty() ? "the pipeline" : path_;
    decoder->Error(key,
                   absl::StrCat("unknown field '", key.value(), "' in ", where,
                                DidYouMean(key.value(), allowed),
                                "; allowed: ", absl::StrJoin(allowed, ", ")));
  }
}

const Node* Fields::Get(absl::string_view key) const {
  if (!ok_) return nullptr;
  return mapping_->Find(key);
}

void DecodeString(Decoder* d, const Fields& f, absl::string_view key,
                  std::string* out) {
  if (const Node* n = f.Get(key)) d->String(*n, f.PathOf(key), out);
}

void DecodeBool(Decoder* d, const Fields& f, absl::string_view key,
                const std::function<void(bool)>& set) {
  bool value = false;
  if (const Node* n = f.Get(key); n && d->Bool(*n, f.PathOf(key), &value)) {
    set(value);
  }
}

void DecodeList(Decoder* d, const Fields& f, absl::string_view key,
                google::protobuf::RepeatedPtrField<std::string>* out) {
  if (const Node* n = f.Get(key)) d->StringList(*n, f.PathOf(key), out);
}

// `env: {NAME: value}` or `env: [{name: NAME, value: v}]`.
void DecodeEnv(Decoder* d, const Fields& f,
               google::protobuf::RepeatedPtrField<v1::EnvVar>* out) {
  const Node* n = f.Get("env");
  if (n == nullptr) return;
  std::string path = f.PathOf("env");
  if (n->IsSequence()) {
    d->Record(path, *n);
    for (size_t i = 0; i < n->items().size(); ++i) {
      Fields e(d, n->items()[i], Index(path, i), {"name", "value"});
      v1::EnvVar* var = out->Add();
      DecodeString(d, e, "name", var->mutable_name());
      DecodeString(d, e, "value", var->mutable_value());
    }
    return;
  }
  if (!n->IsMapping()) {
    d->Record(path, *n);
    d->Error(*n,
             absl::StrCat(path, ": expected a mapping of NAME: value, got a ",
                          n->KindName()));
    return;
  }
  d->Record(path, *n);
  for (size_t i = 0; i < n->entries().size(); ++i) {
    const auto& [key, value] = n->entries()[i];
    v1::EnvVar* var = out->Add();
    std::string item = Index(path, i);
    d->Record(item, key);
    d->String(key, Field(item, "name"), var->mutable_name());
    d->String(value, Field(item, "value"), var->mutable_value());
  }
}

// `labels: {key: value}`.
void DecodeLabels(Decoder* d, const Fields& f,
                  google::protobuf::RepeatedPtrField<v1::Label>* out) {
  const Node* n = f.Get("labels");
  if (n == nullptr) return;
  std::string path = f.PathOf("labels");
  if (!d->ExpectMapping(*n, path)) return;
  for (size_t i = 0; i < n->entries().size(); ++i) {
    const auto& [key, value] = n->entries()[i];
    v1::Label* label = out->Add();
    std::string item = Index(path, i);
    d->Record(item, key);
    d->String(key, Field(item, "key"), label->mutable_key());
    d->String(value, Field(item, "value"), label->mutable_value());
  }
}

}  // namespace kiln::pipeline::internal
