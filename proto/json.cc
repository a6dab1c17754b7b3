#include "proto/json.h"

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/type.pb.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace kiln::proto {
namespace {

namespace pb = google::protobuf;

constexpr char kUrlPrefix[] = "type.googleapis.com";

absl::Status FromProtobuf(const pb::util::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.code()),
                      std::string(s.message()));
}

// The generated pool's resolver (what MessageToJsonString uses), with each
// answer kept: a type is converted once per process, then copied out.
class CachingResolver : public pb::util::TypeResolver {
 public:
  CachingResolver()
      : base_(pb::util::NewTypeResolverForDescriptorPool(
            kUrlPrefix, pb::DescriptorPool::generated_pool())) {}

  pb::util::Status ResolveMessageType(const std::string& type_url,
                                      pb::Type* type) override {
    return Resolve(type_url, type, &types_,
                   [this](const std::string& url, pb::Type* t) {
                     return base_->ResolveMessageType(url, t);
                   });
  }
  pb::util::Status ResolveEnumType(const std::string& type_url,
                                   pb::Enum* enum_type) override {
    return Resolve(type_url, enum_type, &enums_,
                   [this](const std::string& url, pb::Enum* e) {
                     return base_->ResolveEnumType(url, e);
                   });
  }

 private:
  template <typename T, typename F>
  pb::util::Status Resolve(const std::string& url, T* out,
                           absl::flat_hash_map<std::string, T>* cache,
                           F resolve) {
    {
      kiln::MutexLock lock(&mu_);
      auto it = cache->find(url);
      if (it != cache->end()) {
        *out = it->second;
        return pb::util::Status();
      }
    }
    pb::util::Status s = resolve(url, out);
    if (!s.ok()) return s;  // not kept: the next call says the same
    kiln::MutexLock lock(&mu_);
    cache->emplace(url, *out);
    return s;
  }

  std::unique_ptr<pb::util::TypeResolver> base_;
  kiln::Mutex mu_;
  absl::flat_hash_map<std::string, pb::Type> types_;
  absl::flat_hash_map<std::string, pb::Enum> enums_;
};

CachingResolver* GeneratedResolver() {
  static CachingResolver* const resolver = new CachingResolver();
  return resolver;
}

// ---- The direct printer --------------------------------------------------
//
// For the common options (no whitespace, no default-valued fields, enums by
// name) and message types made of integers, bools, strings, enums, maps,
// nested messages and google.protobuf.Timestamp, the JSON is written
// straight from reflection, without the binary round trip and the type
// conversion: the same text as protobuf's printer (json_test checks them
// against each other, byte for byte, field by field). Anything else --
// floating point, bytes, other well-known types, an invalid UTF-8 string, a
// timestamp out of range -- goes to protobuf's printer.

bool DirectOptions(const pb::util::JsonPrintOptions& o) {
  return !o.add_whitespace && !o.always_print_primitive_fields &&
         !o.always_print_enums_as_ints;
}

constexpr char kTimestamp[] = "google.protobuf.Timestamp";

// Whether every field of `d` (transitively) has a direct form; cached.
class DirectTypes {
 public:
  bool Supports(const pb::Descriptor* d) {
    {
      kiln::MutexLock lock(&mu_);
      auto it = known_.find(d);
      if (it != known_.end()) return it->second;
    }
    kiln::MutexLock lock(&mu_);
    return SupportsLocked(d);
  }

 private:
  bool SupportsLocked(const pb::Descriptor* d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = known_.find(d);
    if (it != known_.end()) return it->second;
    if (d->full_name() == kTimestamp) return known_[d] = true;
    if (d->file()->package() == "google.protobuf") return known_[d] = false;
    // A recursive type is assumed printable while its fields are looked at;
    // a wrong guess is harmless: AppendValue refuses what it cannot print
    // and the message goes to protobuf's printer.
    known_[d] = true;
    bool ok = d->extension_range_count() == 0;
    for (int i = 0; ok && i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      switch (f->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_FLOAT:
        case pb::FieldDescriptor::CPPTYPE_DOUBLE:
          ok = false;
          break;
        case pb::FieldDescriptor::CPPTYPE_STRING:
          ok = f->type() == pb::FieldDescriptor::TYPE_STRING;
          break;
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
          ok = SupportsLocked(f->message_type());
          break;
        default:
          break;
      }
    }
    return known_[d] = ok;
  }

  kiln::Mutex mu_;
  absl::flat_hash_map<const pb::Descriptor*, bool> known_ ABSL_GUARDED_BY(mu_);
};

DirectTypes* Direct() {
  static DirectTypes* const types = new DirectTypes();
  return types;
}

// Printable ASCII that is copied as it is, by table (event streams print
// megabytes of digests and names).
struct PlainTable {
  bool is[256] = {};
  constexpr PlainTable() {
    for (int c = 0x20; c < 0x7f; ++c) {
      is[c] = c != '"' && c != '\\' && c != '<' && c != '>';
    }
  }
};
constexpr PlainTable kPlain;

bool Plain(unsigned char c) { return kPlain.is[c]; }

// Appends `s` quoted and escaped as protobuf does: the short escapes, other
// controls, DEL, '<', '>' and U+2028/U+2029 as \uXXXX. False for invalid
// UTF-8 (protobuf drops such bytes; that case is left to it).
bool AppendString(absl::string_view s, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // A run of plain characters in one append (digests, names, keys).
    size_t plain = i;
    while (plain < s.size() && Plain(static_cast<unsigned char>(s[plain]))) {
      ++plain;
    }
    if (plain > i) {
      out->append(s.data() + i, plain - i);
      i = plain;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\b':
          out->append("\\b");
          break;
        case '\f':
          out->append("\\f");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        default:
          if (c < 0x20 || c == 0x7f || c == '<' || c == '>') {
            absl::StrAppendFormat(out, "\\u%04x", c);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: validated (shortest form, no surrogates, at
    // most U+10FFFF), then copied, or escaped for U+2028 and U+2029.
    int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || c > 0xf4 || (len == 2 && c < 0xc2) || i + len > s.size()) {
      return false;
    }
    uint32_t cp = c & (0x7f >> len);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      absl::StrAppendFormat(out, "\\u%04x", cp);
    } else {
      out->append(s.data() + i, len);
    }
    i += len;
  }
  out->push_back('"');
  return true;
}

// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf prints
// a Timestamp; false out of its range (years 1 to 9999, nanos < 1e9).
bool AppendTimestamp(const pb::Message& m, std::string* out) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  int64_t seconds = r->GetInt64(m, d->FindFieldByNumber(1));
  int32_t nanos = r->GetInt32(m, d->FindFieldByNumber(2));
  if (seconds < -62135596800 || seconds > 253402300799 || nanos < 0 ||
      nanos > 999999999) {
    return false;
  }
  // Runs of events share their time (a batch, a replay): the last one
  // formatted on this thread is kept.
  struct Last {
    int64_t seconds = 0;
    int32_t nanos = -1;
    std::string text;
  };
  thread_local Last last;
  if (last.seconds == seconds && last.nanos == nanos) {
    out->append(last.text);
    return true;
  }
  std::string text;
  absl::CivilSecond t =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  absl::StrAppendFormat(&text, "\"%04d-%02d-%02dT%02d:%02d:%02d", t.year(),
                        t.month(), t.day(), t.hour(), t.minute(), t.second());
  if (nanos != 0) {
    if (nanos % 1000000 == 0) {
      absl::StrAppendFormat(&text, ".%03d", nanos / 1000000);
    } else if (nanos % 1000 == 0) {
      absl::StrAppendFormat(&text, ".%06d", nanos / 1000);
    } else {
      absl::StrAppendFormat(&text, ".%09d", nanos);
    }
  }
  text.append("Z\"");
  out->append(text);
  last.seconds = seconds;
  last.nanos = nanos;
  last.text = std::move(text);
  return true;
}

bool AppendMessage(const pb::Message& m, bool preserve_names, std::string* out);

// One value of field `f` (index `i` if repeated, else -1).
bool AppendValue(const pb::Message& m, const pb::FieldDescriptor* f, int i,
                 bool preserve_names, std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out,
                      rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f));
      return true;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out,
                      rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f));
      return true;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"",
                      rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f),
                      "\"");
      return true;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"",
                      rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f),
                      "\"");
      return true;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f))
                      ? "true"
                      : "false");
      return true;
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      int number =
          rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const pb::EnumValueDescriptor* v =
          f->enum_type()->FindValueByNumber(number);
      if (v == nullptr) {
        absl::StrAppend(out, number);
      } else {
        absl::StrAppend(out, "\"", v->name(), "\"");
      }
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      if (f->type() != pb::FieldDescriptor::TYPE_STRING) return false;  // bytes
      std::string scratch;
      const std::string& s =
          rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
              : r->GetStringReference(m, f, &scratch);
      return AppendString(s, out);
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
      const pb::Message& sub =
          rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f);
      if (f->message_type()->full_name() == kTimestamp) {
        return AppendTimestamp(sub, out);
      }
      // Other well-known types have JSON forms of their own (protobuf's).
      if (f->message_type()->file()->package() == "google.protobuf") {
        return false;
      }
      return AppendMessage(sub, preserve_names, out);
    }
    default:
      return false;
  }
}

// A map key as a JSON object key (its text, quoted).
bool AppendMapKey(const pb::Message& entry, const pb::FieldDescriptor* key,
                  std::string* out) {
  const pb::Reflection* r = entry.GetReflection();
  switch (key->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      return AppendString(r->GetStringReference(entry, key, &scratch), out);
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      out->append(r->GetBool(entry, key) ? "\"true\"" : "\"false\"");
      return true;
    case pb::FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, "\"", r->GetInt32(entry, key), "\"");
      return true;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, "\"", r->GetUInt32(entry, key), "\"");
      return true;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"", r->GetInt64(entry, key), "\"");
      return true;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", r->GetUInt64(entry, key), "\"");
      return true;
    default:
      return false;
  }
}

bool AppendMessage(const pb::Message& m, bool preserve_names,
                   std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);  // the set ones, by number
  out->push_back('{');
  bool first = true;
  for (const pb::FieldDescriptor* f : fields) {
    if (!first) out->push_back(',');
    first = false;
    out->push_back('"');
    out->append(preserve_names ? f->name() : f->json_name());
    out->append("\":");
    if (f->is_map()) {
      out->push_back('{');
      const pb::FieldDescriptor* key = f->message_type()->map_key();
      const pb::FieldDescriptor* value = f->message_type()->map_value();
      int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (i > 0) out->push_back(',');
        const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
        if (!AppendMapKey(entry, key, out)) return false;
        out->push_back(':');
        if (!AppendValue(entry, value, -1, preserve_names, out)) return false;
      }
      out->push_back('}');
    } else if (f->is_repeated()) {
      out->push_back('[');
      int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (i > 0) out->push_back(',');
        if (!AppendValue(m, f, i, preserve_names, out)) return false;
      }
      out->push_back(']');
    } else if (!AppendValue(m, f, -1, preserve_names, out)) {
      return false;
    }
  }
  out->push_back('}');
  return true;
}

}  // namespace

absl::Status AppendJson(const pb::Message& message,
                        const pb::util::JsonPrintOptions& options,
                        std::string* out) {
  const pb::Descriptor* d = message.GetDescriptor();
  if (d->file()->pool() != pb::DescriptorPool::generated_pool()) {
    return FromProtobuf(pb::util::MessageToJsonString(message, out, options));
  }
  if (DirectOptions(options) && d->full_name() != kTimestamp &&
      Direct()->Supports(d)) {
    size_t before = out->size();
    if (AppendMessage(message, options.preserve_proto_field_names, out)) {
      return absl::OkStatus();
    }
    out->resize(before);  // a value without a direct form: protobuf's turn
  }
  std::string binary;
  if (!message.SerializeToString(&binary)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot serialize a ", d->full_name()));
  }
  return FromProtobuf(pb::util::BinaryToJsonString(
      GeneratedResolver(), absl::StrCat(kUrlPrefix, "/", d->full_name()),
      binary, out, options));
}

}  // namespace kiln::proto
