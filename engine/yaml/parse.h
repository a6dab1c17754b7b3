// Hardened YAML parsing over yaml-cpp 0.7.0's event parser.
//
// Guarantees, for any input: bounded time and memory (size, depth, node and
// scalar limits), no deep recursion on a small stack (a parse runs on the
// caller's thread only if 1 MiB of its stack is left, ~4x the most yaml-cpp
// can use, and on a thread with its own large stack otherwise), aliases
// expanded only within the node budget and never recursively, duplicate keys
// and non-scalar keys rejected, trailing junk and extra documents rejected by
// Parse(). Errors are InvalidArgument (bad YAML) or ResourceExhausted (over a
// limit), with a message "FILE:LINE:COL: text". Thread-safe.
#ifndef KILN_ENGINE_YAML_PARSE_H_
#define KILN_ENGINE_YAML_PARSE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/yaml/node.h"

namespace kiln::yaml {

struct Limits {
  size_t max_bytes = 4 << 20;  // input size
  int max_depth = 64;          // nesting of sequences/mappings
  size_t max_nodes = 200000;   // after alias expansion
  // Of those, the nodes aliases add (their copies); the default leaves
  // only max_nodes. A lower bound stops alias bombs (billion laughs) early
  // when max_nodes is generous (a large trusted file).
  size_t max_alias_nodes = static_cast<size_t>(-1);
  size_t max_scalar_bytes = 1 << 20;  // one scalar
  size_t max_documents = 10000;       // ParseAll only
  bool allow_aliases = true;          // false: any alias is an error
};

// Exactly one document (an empty input is a null document).
absl::StatusOr<Node> Parse(absl::string_view text, absl::string_view filename,
                           const Limits& limits = Limits());

// Every document of a multi-document stream ("---" separated). Empty
// documents (null) are dropped.
absl::StatusOr<std::vector<Node>> ParseAll(absl::string_view text,
                                           absl::string_view filename,
                                           const Limits& limits = Limits());

// Reads a regular file of at most max_bytes (FIFOs, devices and directories
// are refused, never opened for blocking reads).
absl::StatusOr<std::string> ReadFileCapped(const std::string& path,
                                           size_t max_bytes);

}  // namespace kiln::yaml

#endif  // KILN_ENGINE_YAML_PARSE_H_
