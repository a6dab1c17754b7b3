#include "engine/render/value.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/render/scalar.h"

namespace kiln::render {

Value Value::Bool(bool b) {
  Value v;
  v.type = Type::kBool;
  v.boolean = b;
  return v;
}

Value Value::Int(int64_t i) { return IntText(std::to_string(i)); }

Value Value::IntText(std::string digits) {
  Value v;
  v.type = Type::kInt;
  v.text = std::move(digits);
  return v;
}

Value Value::Float(double d) {
  Value v;
  v.type = Type::kFloat;
  v.number = d;
  return v;
}

Value Value::Str(std::string s) {
  Value v;
  v.type = Type::kString;
  v.text = std::move(s);
  return v;
}

Value Value::EmptyList() {
  Value v;
  v.type = Type::kList;
  return v;
}

Value Value::EmptyMap() {
  Value v;
  v.type = Type::kMap;
  return v;
}

const Value* Value::Get(absl::string_view key) const {
  if (type != Type::kMap) return nullptr;
  auto it = map.find(std::string(key));
  return it == map.end() ? nullptr : &it->second;
}

Value* Value::GetMutable(absl::string_view key) {
  if (type != Type::kMap) return nullptr;
  auto it = map.find(std::string(key));
  return it == map.end() ? nullptr : &it->second;
}

Value& Value::At(const std::string& key) {
  if (type != Type::kMap) {
    *this = EmptyMap();
  }
  return map[key];
}

const Value* Value::Path(std::initializer_list<absl::string_view> keys) const {
  const Value* v = this;
  for (absl::string_view k : keys) {
    v = v->Get(k);
    if (v == nullptr) return nullptr;
  }
  return v;
}

Value* Value::PathMutable(std::initializer_list<absl::string_view> keys) {
  Value* v = this;
  for (absl::string_view k : keys) {
    v = v->GetMutable(k);
    if (v == nullptr) return nullptr;
  }
  return v;
}

std::string Value::StringAt(
    std::initializer_list<absl::string_view> keys) const {
  const Value* v = Path(keys);
  return v != nullptr && v->IsString() ? v->text : "";
}

std::string Value::ScalarText() const {
  switch (type) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return boolean ? "true" : "false";
    case Type::kInt:
    case Type::kString:
      return text;
    case Type::kFloat:
      return FormatNumber(number);
    default:
      return "";
  }
}

bool Value::operator==(const Value& o) const {
  if (type != o.type) return false;
  switch (type) {
    case Type::kNull:
      return true;
    case Type::kBool:
      return boolean == o.boolean;
    case Type::kInt:
    case Type::kString:
      return text == o.text;
    case Type::kFloat:
      return number == o.number;
    case Type::kList:
      return list == o.list;
    case Type::kMap:
      return map == o.map;
  }
  return false;
}

}  // namespace kiln::render
