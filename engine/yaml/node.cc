#include "engine/yaml/node.h"

namespace kiln::yaml {

Node Node::Null(Mark mark) {
  Node n;
  n.kind_ = Kind::kNull;
  n.mark_ = mark;
  return n;
}

Node Node::EmptyInFlow(Mark mark) {
  Node n = Null(mark);
  n.empty_in_flow_ = true;
  return n;
}

Node Node::Scalar(Mark mark, std::string value, bool quoted, std::string tag) {
  Node n;
  n.kind_ = Kind::kScalar;
  n.mark_ = mark;
  n.value_ = std::move(value);
  n.quoted_ = quoted;
  n.tag_ = std::move(tag);
  return n;
}

Node Node::Sequence(Mark mark, bool flow) {
  Node n;
  n.kind_ = Kind::kSequence;
  n.mark_ = mark;
  n.flow_ = flow;
  return n;
}

Node Node::Mapping(Mark mark, bool flow) {
  Node n;
  n.kind_ = Kind::kMapping;
  n.mark_ = mark;
  n.flow_ = flow;
  return n;
}

const Node* Node::Find(absl::string_view key) const {
  if (kind_ != Kind::kMapping) return nullptr;
  for (const auto& [k, v] : entries_) {
    if (k.value() == key) return &v;
  }
  return nullptr;
}

Node* Node::FindMutable(absl::string_view key) {
  if (kind_ != Kind::kMapping) return nullptr;
  for (auto& [k, v] : entries_) {
    if (k.value() == key) return &v;
  }
  return nullptr;
}

const char* Node::KindName() const {
  switch (kind_) {
    case Kind::kNull:
      return "null";
    case Kind::kScalar:
      return "scalar";
    case Kind::kSequence:
      return "sequence";
    case Kind::kMapping:
      return "mapping";
  }
  return "?";
}

}  // namespace kiln::yaml
