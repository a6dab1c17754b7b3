// Pure helpers of the API server double: label and field selectors, the
// three PATCH flavours, and time formats. Separate from the server so they
// are unit-tested on their own.
#ifndef KILN_KUBE_TESTING_API_OBJECTS_H_
#define KILN_KUBE_TESTING_API_OBJECTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace kube {
namespace testing {

// A label selector in the API's string syntax: `a=b`, `a==b`, `a!=b`,
// `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (all must hold).
class LabelSelector {
 public:
  static absl::StatusOr<LabelSelector> Parse(absl::string_view text);
  // `labels` is metadata.labels (an object, or null when absent).
  bool Matches(const nlohmann::json& labels) const;
  bool empty() const { return reqs_.empty(); }

 private:
  enum class Op { kEq, kNotEq, kIn, kNotIn, kExists, kNotExists };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> reqs_;
};

// A field selector: `f=v`, `f==v`, `f!=v`, comma-separated, over the dotted
// fields `supported` lists (the others are refused, as the real server
// does). A missing field compares as "".
class FieldSelector {
 public:
  static absl::StatusOr<FieldSelector> Parse(
      absl::string_view text, const std::vector<std::string>& supported);
  bool Matches(const nlohmann::json& object) const;
  bool empty() const { return reqs_.empty(); }

 private:
  struct Requirement {
    std::string field;
    bool negate;
    std::string value;
  };
  std::vector<Requirement> reqs_;
};

// The string value of a dotted field of an object ("" when absent).
std::string FieldValue(const nlohmann::json& object, absl::string_view field);

// application/merge-patch+json (RFC 7386).
absl::StatusOr<nlohmann::json> ApplyMergePatch(const nlohmann::json& original,
                                               const nlohmann::json& patch);
// application/json-patch+json (RFC 6902).
absl::StatusOr<nlohmann::json> ApplyJsonPatch(const nlohmann::json& original,
                                              const nlohmann::json& patch);
// application/strategic-merge-patch+json for the built-in types: lists with
// a patch merge key (containers, volumes, env, ports, volumeMounts,
// conditions, ownerReferences, ...) merge by that key, finalizers merge as
// a set, others are replaced; directives $patch (replace/delete/merge),
// $retainKeys, $setElementOrder/F and $deleteFromPrimitiveList/F. The merge
// key is chosen by the list's field name (the real server looks it up in
// the type's schema; for the built-in types the two agree).
absl::StatusOr<nlohmann::json> ApplyStrategicMergePatch(
    const nlohmann::json& original, const nlohmann::json& patch);

// "2026-01-02T03:04:05Z" (metav1.Time).
std::string FormatTimeSeconds(absl::Time t);
// RFC3339Nano as Go prints it (trailing zeros of the fraction trimmed).
std::string FormatTimeNano(absl::Time t);
// RFC 3339 with or without a fraction.
absl::StatusOr<absl::Time> ParseTime(absl::string_view text);

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_API_OBJECTS_H_
