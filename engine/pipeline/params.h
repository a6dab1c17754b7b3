// Pipeline parameters: checking values against their declaration and
// resolving a trigger's values (defaults applied) before a run.
#ifndef KILN_ENGINE_PIPELINE_PARAMS_H_
#define KILN_ENGINE_PIPELINE_PARAMS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

// "" if `value` is valid for `param`: BOOL "true"/"false"; INT a decimal
// integer (optional '-') within int64; CHOICE one of `choices`; STRING (or
// unspecified) anything.
std::string CheckParamValue(const v1::Param& param, const std::string& value);

// Every declared param's value: the given one, else its default. Errors
// (InvalidArgument) name every missing required param, unknown given param
// (with a suggestion) and invalid value; secret values never appear in them.
absl::StatusOr<std::map<std::string, std::string>> ResolveParams(
    const v1::Pipeline& pipeline,
    const google::protobuf::Map<std::string, std::string>& given);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_PARAMS_H_
