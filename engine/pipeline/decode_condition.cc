// `when:` conditions. Forms (see condition.h):
//   {branch: main}  {branch: {not: main}}  {branch: {regex: "^release/"}}
//   {branch: {glob: "feature/*"}}  {branch: {exact: main}}
//   {message: "^shipit"}  {event: pull_request}  {event: [push, tag]}
//   {param: {name: env, equals: prod}}  (or not_equals / matches)
//   {result: {task: version, name: tag, equals: v1}}  (or not_equals / matches)
//   {all: [...]}  {any: [...]}  {not: {...}}
// Several keys in one mapping mean all of them (in the order written).
#include "absl/strings/str_cat.h"
#include "engine/pipeline/decode.h"

namespace kiln::pipeline::internal {
namespace {

const std::vector<std::string>& ConditionKeys() {
  static const auto* keys = new std::vector<std::string>{
      "branch", "message", "changelog", "event", "param",
      "result", "all",     "any",       "not"};
  return *keys;
}

const EnumNames& EventNames() {
  static const auto* names =
      new EnumNames{{"push", v1::PUSH},
                    {"pull_request", v1::PULL_REQUEST},
                    {"tag", v1::TAG},
                    {"manual", v1::MANUAL},
                    {"pull_request_closed", v1::PULL_REQUEST_CLOSED},
                    {"branch_deleted", v1::BRANCH_DELETED}};
  return *names;
}

void DecodeStringMatch(Decoder* d, const Node& node, const std::string& path,
                       v1::StringMatch* out) {
  d->Record(path, node);
  if (node.IsScalar()) {
    d->String(node, Field(path, "pattern"), out->mutable_pattern());
    return;
  }
  Fields f(d, node, path, {"glob", "regex", "exact", "not"});
  if (!f.ok()) return;
  if (node.entries().size() != 1) {
    d->Error(node, absl::StrCat(path,
                                ": expected exactly one of glob, regex, "
                                "exact or not, got ",
                                node.entries().size(), " keys"));
    return;
  }
  const auto& [key, value] = node.entries().front();
  if (key.value() == "not") {
    DecodeStringMatch(d, value, path, out);
    out->set_negate(!out->negate());
    return;
  }
  if (key.value() == "glob") out->set_kind(v1::StringMatch::GLOB);
  if (key.value() == "regex") out->set_kind(v1::StringMatch::REGEX);
  if (key.value() == "exact") out->set_kind(v1::StringMatch::EXACT);
  d->String(value, Field(path, "pattern"), out->mutable_pattern());
}

void DecodeEvents(Decoder* d, const Node& node, const std::string& path,
                  v1::EventSet* out) {
  d->Record(path, node);
  if (node.IsScalar()) {
    int event = 0;
    if (d->Enum(node, Index(path, 0), EventNames(), "event", &event)) {
      out->add_events(static_cast<v1::EventKind>(event));
    }
    return;
  }
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    int event = 0;
    if (d->Enum(node.items()[i], Index(path, i), EventNames(), "event",
                &event)) {
      out->add_events(static_cast<v1::EventKind>(event));
    }
  }
}

// The one test of a param or result match: exactly one of equals,
// not_equals or matches (ParamMatch and ResultMatch share the fields).
template <typename Match>
void DecodeValueTest(Decoder* d, const Fields& f, const std::string& path,
                     Match* out) {
  int tests = 0;
  for (const char* key : {"equals", "not_equals", "matches"}) {
    const Node* n = f.Get(key);
    if (n == nullptr) continue;
    if (++tests > 1) {
      d->Error(*n, absl::StrCat(path,
                                ": expected exactly one of equals, "
                                "not_equals or matches"));
      continue;
    }
    std::string value;
    if (!d->String(*n, f.PathOf(key), &value)) continue;
    absl::string_view k = key;
    if (k == "equals") out->set_equals(value);
    if (k == "not_equals") out->set_not_equals(value);
    if (k == "matches") out->set_matches(value);
  }
}

void DecodeParamMatch(Decoder* d, const Node& node, const std::string& path,
                      v1::ParamMatch* out) {
  Fields f(d, node, path, {"name", "equals", "not_equals", "matches"});
  if (!f.ok()) return;
  if (const Node* n = f.Get("name"))
    d->String(*n, f.PathOf("name"), out->mutable_name());
  DecodeValueTest(d, f, path, out);
}

void DecodeResultMatch(Decoder* d, const Node& node, const std::string& path,
                       v1::ResultMatch* out) {
  Fields f(d, node, path, {"task", "name", "equals", "not_equals", "matches"});
  if (!f.ok()) return;
  if (const Node* n = f.Get("task"))
    d->String(*n, f.PathOf("task"), out->mutable_task());
  if (const Node* n = f.Get("name"))
    d->String(*n, f.PathOf("name"), out->mutable_name());
  DecodeValueTest(d, f, path, out);
}

void DecodeList(Decoder* d, const Node& node, const std::string& path,
                v1::ConditionList* out) {
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    DecodeCondition(d, node.items()[i], Index(path, i), out->add_conditions());
  }
}

// One key of a condition mapping into `out` (at `path`).
void DecodeOne(Decoder* d, const Node& key, const Node& value,
               const std::string& path, v1::Condition* out) {
  const std::string& k = key.value();
  std::string child = Field(path, k);
  if (k == "branch") DecodeStringMatch(d, value, child, out->mutable_branch());
  if (k == "message")
    DecodeStringMatch(d, value, child, out->mutable_message());
  if (k == "changelog")
    DecodeStringMatch(d, value, child, out->mutable_changelog());
  if (k == "event") DecodeEvents(d, value, child, out->mutable_event());
  if (k == "param") DecodeParamMatch(d, value, child, out->mutable_param());
  if (k == "result") DecodeResultMatch(d, value, child, out->mutable_result());
  if (k == "all") DecodeList(d, value, child, out->mutable_all());
  if (k == "any") DecodeList(d, value, child, out->mutable_any());
  if (k == "not") DecodeCondition(d, value, child, out->mutable_not_());
}

}  // namespace

void DecodeCondition(Decoder* d, const Node& node, const std::string& path,
                     v1::Condition* out) {
  Fields f(d, node, path, ConditionKeys());
  if (!f.ok()) return;
  std::vector<const std::pair<Node, Node>*> known;
  for (const auto& entry : node.entries()) {
    for (const std::string& k : ConditionKeys()) {
      if (entry.first.value() == k) known.push_back(&entry);
    }
  }
  if (known.size() == 1) {
    DecodeOne(d, known[0]->first, known[0]->second, path, out);
    return;
  }
  if (known.empty()) return;  // `when: {}` is always true
  v1::ConditionList* all = out->mutable_all();
  for (size_t i = 0; i < known.size(); ++i) {
    std::string child = Index(Field(path, "all"), i);
    d->Record(child, known[i]->first);
    DecodeOne(d, known[i]->first, known[i]->second, child,
              all->add_conditions());
  }
}

}  // namespace kiln::pipeline::internal
