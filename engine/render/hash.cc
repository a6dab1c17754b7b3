#include "engine/render/hash.h"

#include <string>

#include "base/sha256.h"
#include "engine/render/scalar.h"

namespace kiln::render {

std::string ToJson(const Value& v) {
  switch (v.type) {
    case Value::Type::kNull:
      return "null";
    case Value::Type::kString:
      return JsonQuote(v.text);
    case Value::Type::kList: {
      std::string out = "[";
      for (size_t i = 0; i < v.list.size(); ++i) {
        if (i > 0) out += ",";
        out += ToJson(v.list[i]);
      }
      return out + "]";
    }
    case Value::Type::kMap: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : v.map) {
        if (!first) out += ",";
        first = false;
        out += JsonQuote(k) + ":" + ToJson(val);
      }
      return out + "}";
    }
    default:
      return v.ScalarText();
  }
}

std::string ContentHash(const Value& obj, const std::string& name) {
  std::string kind = obj.StringAt({"kind"});
  Value m = Value::EmptyMap();
  m.map["kind"] = Value::Str(kind);
  m.map["name"] = Value::Str(name);
  auto field = [&](const char* key) {
    const Value* f = obj.Get(key);
    if (f == nullptr) return Value::Str("");
    if (f->IsScalar()) return Value::Str(f->ScalarText());
    return *f;
  };
  m.map["data"] = field("data");
  if (kind == "Secret") {
    m.map["type"] = field("type");
    const Value* sd = obj.Get("stringData");
    if (sd != nullptr && sd->IsMap()) m.map["stringData"] = *sd;
  } else {
    const Value* bd = obj.Get("binaryData");
    if (bd != nullptr && bd->IsMap()) m.map["binaryData"] = *bd;
  }
  std::string json = ToJson(m);
  // base/sha256: SHA-NI where the CPU has it, so a render does not load
  // OpenSSL (kiln's binary binds it lazily).
  uint8_t digest[Sha256::kBytes];
  Sha256 sha;
  sha.Update(json.data(), json.size());
  sha.Final(digest);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; out.size() < 10; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  for (char& c : out) {
    switch (c) {
      case '0':
        c = 'g';
        break;
      case '1':
        c = 'h';
        break;
      case '3':
        c = 'k';
        break;
      case 'a':
        c = 'm';
        break;
      case 'e':
        c = 't';
        break;
      default:
        break;
    }
  }
  return out;
}

}  // namespace kiln::render
