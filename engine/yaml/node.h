// A YAML document as a plain tree with source positions, built by a parser
// hardened for yaml-cpp 0.7.0 (see parse.h). Keys of a mapping keep their
// order of appearance and are unique.
#ifndef KILN_ENGINE_YAML_NODE_H_
#define KILN_ENGINE_YAML_NODE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace kiln::yaml {

// 1-based line and column of a node's first character.
struct Mark {
  int line = 0;
  int column = 0;
};

class Node {
 public:
  enum class Kind { kNull, kScalar, kSequence, kMapping };

  Node() = default;
  static Node Null(Mark mark);
  // A null written as nothing at all (no `~` or `null`) inside a flow
  // collection, e.g. the value of `{a: }`: kustomize reads it as "".
  static Node EmptyInFlow(Mark mark);
  static Node Scalar(Mark mark, std::string value, bool quoted,
                     std::string tag = "");
  static Node Sequence(Mark mark, bool flow = false);
  static Node Mapping(Mark mark, bool flow = false);

  Kind kind() const { return kind_; }
  bool IsNull() const { return kind_ == Kind::kNull; }
  bool IsScalar() const { return kind_ == Kind::kScalar; }
  bool IsSequence() const { return kind_ == Kind::kSequence; }
  bool IsMapping() const { return kind_ == Kind::kMapping; }
  Mark mark() const { return mark_; }

  // Scalar text (empty for non-scalars). `quoted`: written in quotes (or as a
  // block scalar), so it is always a string, never a number/bool/null.
  const std::string& value() const { return value_; }
  bool quoted() const { return quoted_; }
  // Explicit tag as given (e.g. "tag:yaml.org,2002:str"), "" if none.
  const std::string& tag() const { return tag_; }
  // Written in flow style ([...] / {...}).
  bool flow() const { return flow_; }
  // A null node made by EmptyInFlow.
  bool empty_in_flow() const { return empty_in_flow_; }

  // Sequence items.
  const std::vector<Node>& items() const { return items_; }
  std::vector<Node>& mutable_items() { return items_; }
  // Mapping entries in source order; every key is a scalar.
  const std::vector<std::pair<Node, Node>>& entries() const { return entries_; }
  std::vector<std::pair<Node, Node>>& mutable_entries() { return entries_; }

  // Mapping lookup by key text; nullptr if absent or not a mapping.
  const Node* Find(absl::string_view key) const;
  Node* FindMutable(absl::string_view key);

  // "null", "scalar", "sequence" or "mapping"; for messages.
  const char* KindName() const;

 private:
  Kind kind_ = Kind::kNull;
  Mark mark_;
  std::string value_;
  std::string tag_;
  bool quoted_ = false;
  bool flow_ = false;
  bool empty_in_flow_ = false;
  std::vector<Node> items_;
  std::vector<std::pair<Node, Node>> entries_;
};

}  // namespace kiln::yaml

#endif  // KILN_ENGINE_YAML_NODE_H_
