// A run task's declared results (RunSpec.results) from what the executor
// read of $KILN_RESULTS (ExecResult.results): every declared name present,
// nothing else, each value UTF-8 without NUL bytes (values become argv
// elements and environment values), one trailing newline removed (so that
// `echo v1 > $KILN_RESULTS/version` gives "v1"). Pure; thread-safe.
#ifndef KILN_ENGINE_KINDS_TASK_RESULTS_H_
#define KILN_ENGINE_KINDS_TASK_RESULTS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"
#include "google/protobuf/repeated_field.h"

namespace kiln::kinds {

// The workspace directory the engine asks for (ExecRequest.results_dir).
inline constexpr char kResultsDir[] = ".kiln-results";

// True if `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// at most U+10FFFF).
bool IsUtf8(absl::string_view text);

// name -> value of each declared result. InvalidArgument naming the result
// for a missing or undeclared one, bad UTF-8 or a NUL byte.
absl::StatusOr<std::map<std::string, std::string>> CheckTaskResults(
    const google::protobuf::RepeatedPtrField<std::string>& declared,
    const google::protobuf::Map<std::string, std::string>& written);

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_TASK_RESULTS_H_
