#include "engine/pipeline/params.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/suggest.h"

namespace kiln::pipeline {

std::string CheckParamValue(const v1::Param& param, const std::string& value) {
  auto shown = [&] {
    return param.secret() ? std::string("(secret)")
                          : absl::StrCat("'", value, "'");
  };
  // No command, variable or path can carry a NUL byte.
  if (value.find('\0') != std::string::npos) {
    return param.secret() ? "the value contains a NUL byte"
                          : "the value contains a NUL byte (\\0)";
  }
  switch (param.type()) {
    case v1::BOOL:
      if (value == "true" || value == "false") return "";
      return absl::StrCat("expected true or false, got ", shown());
    case v1::INT: {
      int64_t n = 0;
      bool digits = !value.empty() &&
                    value.find_first_not_of("-0123456789") == std::string::npos;
      if (digits && absl::SimpleAtoi(value, &n)) return "";
      return absl::StrCat("expected an integer, got ", shown());
    }
    case v1::CHOICE:
      for (const std::string& c : param.choices()) {
        if (c == value) return "";
      }
      return absl::StrCat(shown(), " is not one of the choices [",
                          absl::StrJoin(param.choices(), ", "), "]",
                          param.secret()
                              ? ""
                              : DidYouMean(value, {param.choices().begin(),
                                                   param.choices().end()}));
    default:
      return "";
  }
}

absl::StatusOr<std::map<std::string, std::string>> ResolveParams(
    const v1::Pipeline& pipeline,
    const google::protobuf::Map<std::string, std::string>& given) {
  std::vector<std::string> errors;
  std::map<std::string, std::string> out;
  std::vector<std::string> declared;
  for (const v1::Param& p : pipeline.params()) {
    declared.push_back(p.name());
    auto it = given.find(p.name());
    if (it == given.end() && !p.has_default_()) {
      errors.push_back(absl::StrCat("param ", p.name(), " is required"));
      continue;
    }
    std::string value = it != given.end() ? it->second : p.default_();
    std::string error = CheckParamValue(p, value);
    if (!error.empty()) {
      errors.push_back(absl::StrCat("param ", p.name(), ": ", error));
      continue;
    }
    out[p.name()] = value;
  }
  std::vector<std::string> unknown;
  for (const auto& [name, value] : given) {
    if (out.count(name) == 0 &&
        std::find(declared.begin(), declared.end(), name) == declared.end()) {
      unknown.push_back(name);
    }
  }
  std::sort(unknown.begin(), unknown.end());
  for (const std::string& name : unknown) {
    errors.push_back(
        absl::StrCat("unknown param ", name, DidYouMean(name, declared)));
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  }
  return out;
}

}  // namespace kiln::pipeline
