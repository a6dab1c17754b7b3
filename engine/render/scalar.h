// Scalar typing and number printing as kustomize v5.5.0 does it: plain YAML
// scalars resolve like go-yaml v3 (ints in any Go base with `_`, YAML 1.1
// octal `0755`, floats, true/false, null, timestamps), and every value then
// round-trips through Go's encoding/json, which is why `1.0` prints as `1`
// and `1e20` as `1e+20`. Pure functions; thread-safe.
#ifndef KILN_ENGINE_RENDER_SCALAR_H_
#define KILN_ENGINE_RENDER_SCALAR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/render/value.h"

namespace kiln::render {

// The value of an unquoted scalar. InvalidArgument for values JSON cannot
// hold (.inf, .nan). Timestamps become RFC 3339 strings.
absl::StatusOr<Value> ResolvePlainScalar(absl::string_view text);

// True if a string must be double-quoted so that it reads back as a string:
// it would resolve to null/bool/number/timestamp, or is a YAML 1.1 bool
// (yes/no/on/off/y/n) or a base-60 number like 12:30.
bool StringNeedsDoubleQuotes(absl::string_view s);

// How a float prints after the JSON round trip (e.g. 1.5, 1000, 1e+20).
std::string FormatNumber(double d);

// Go's encoding/json string encoding (quotes, \u003c for <, > and &).
std::string JsonQuote(absl::string_view s);

}  // namespace kiln::render

#endif  // KILN_ENGINE_RENDER_SCALAR_H_
