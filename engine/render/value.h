// A JSON-like document model for rendered Kubernetes objects: null, bool,
// int, float, string, list and map. Maps are ordered by key bytewise, which
// is the order kustomize prints them in. Plain data; not thread-safe.
#ifndef KILN_ENGINE_RENDER_VALUE_H_
#define KILN_ENGINE_RENDER_VALUE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kiln::render {

struct Value {
  enum class Type { kNull, kBool, kInt, kFloat, kString, kList, kMap };

  Type type = Type::kNull;
  bool boolean = false;
  // kString: the text. kInt: the decimal digits (int64 or uint64 range).
  std::string text;
  double number = 0;  // kFloat
  std::vector<Value> list;
  std::map<std::string, Value> map;

  static Value Null() { return Value(); }
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value IntText(std::string digits);
  static Value Float(double d);
  static Value Str(std::string s);
  static Value EmptyList();
  static Value EmptyMap();

  bool IsNull() const { return type == Type::kNull; }
  bool IsString() const { return type == Type::kString; }
  bool IsMap() const { return type == Type::kMap; }
  bool IsList() const { return type == Type::kList; }
  bool IsScalar() const { return type != Type::kList && type != Type::kMap; }

  // Map member or nullptr (also when this is not a map).
  const Value* Get(absl::string_view key) const;
  Value* GetMutable(absl::string_view key);
  // Map member, created (as null) if absent; turns a null into a map.
  Value& At(const std::string& key);
  // Follows a path of map keys; nullptr if any step is missing.
  const Value* Path(std::initializer_list<absl::string_view> keys) const;
  Value* PathMutable(std::initializer_list<absl::string_view> keys);
  // The string at a path, or "" when absent or not a string.
  std::string StringAt(std::initializer_list<absl::string_view> keys) const;

  // Scalar as the text it would print (no quoting); "" for collections.
  std::string ScalarText() const;

  bool operator==(const Value& o) const;
  bool operator!=(const Value& o) const { return !(*this == o); }
};

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_VALUE_H_
