#include "engine/pipeline/substitute.h"

#include <algorithm>
#include <cstdint>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/pipeline/task_strings.h"

namespace kiln::pipeline {
namespace {

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-';
}

bool IsName(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

// Parses the inside of "${...}"; false if it has no known form.
bool ParseInner(absl::string_view inner, Reference* ref) {
  std::vector<absl::string_view> parts = absl::StrSplit(inner, '.');
  for (absl::string_view p : parts) {
    if (!IsName(p)) return false;
  }
  if (parts.size() == 2 && parts[0] == "params") {
    ref->kind = Reference::Kind::kParam;
    ref->name = std::string(parts[1]);
    return true;
  }
  if (parts.size() == 2 && parts[0] == "trigger") {
    ref->kind = Reference::Kind::kTrigger;
    ref->name = std::string(parts[1]);
    return true;
  }
  if (parts.size() == 4 && parts[0] == "tasks" && parts[2] == "results") {
    ref->kind = Reference::Kind::kTaskResult;
    ref->name = std::string(parts[1]);
    ref->key = std::string(parts[3]);
    return true;
  }
  if (parts.size() == 4 && parts[0] == "tasks" && parts[2] == "outputs") {
    ref->kind = Reference::Kind::kTaskOutput;
    ref->name = std::string(parts[1]);
    ref->key = std::string(parts[3]);
    return true;
  }
  return false;
}

// Walks `text`, calling on_literal for literal runs and on_ref per reference.
template <typename OnLiteral, typename OnRef>
absl::Status Scan(absl::string_view text, OnLiteral on_literal, OnRef on_ref) {
  size_t i = 0;
  while (i < text.size()) {
    size_t dollar = text.find('$', i);
    if (dollar == absl::string_view::npos) {
      on_literal(text.substr(i));
      return absl::OkStatus();
    }
    on_literal(text.substr(i, dollar - i));
    absl::string_view rest = text.substr(dollar);
    if (absl::StartsWith(rest, "$${")) {
      on_literal("${");
      i = dollar + 3;
      continue;
    }
    if (!absl::StartsWith(rest, "${")) {
      on_literal("$");
      i = dollar + 1;
      continue;
    }
    size_t close = rest.find('}');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unterminated reference '", rest.substr(0, 40),
                       "' (write $${ for a literal ${)"));
    }
    Reference ref;
    ref.text = std::string(rest.substr(0, close + 1));
    if (!ParseInner(rest.substr(2, close - 2), &ref)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown reference '", ref.text,
          "'; expected ${params.NAME}, ${trigger.FIELD}, "
          "${tasks.TASK.outputs.KEY} or ${tasks.TASK.results.NAME} (write "
          "$${ for a literal ${)"));
    }
    absl::Status s = on_ref(ref);
    if (!s.ok()) return s;
    i = dollar + close + 1;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& TriggerFields() {
  static const auto* fields = new std::vector<std::string>{
      "branch", "branch_slug", "event", "revision", "author", "commit_time"};
  return *fields;
}

absl::Status ParseReferences(absl::string_view text,
                             std::vector<Reference>* refs) {
  return Scan(
      text, [](absl::string_view) {},
      [refs](const Reference& r) {
        refs->push_back(r);
        return absl::OkStatus();
      });
}

std::vector<std::string> OutputKeys(const v1::Task& task) {
  const KindSpec* kind = KindOf(task);
  return kind == nullptr ? std::vector<std::string>{}
                         : kind->Facts(task).output_keys;
}

std::vector<std::string> DeclaredResults(const v1::Task& task) {
  const KindSpec* kind = KindOf(task);
  if (kind == nullptr) return {};
  std::vector<std::string> names = kind->Facts(task).results;
  std::sort(names.begin(), names.end());
  return names;
}

std::string ResultKey(absl::string_view name) {
  return absl::StrCat(kResultKeyPrefix, name);
}

std::string CheckResultNames(
    const google::protobuf::RepeatedPtrField<std::string>& names) {
  if (names.size() > kMaxDeclaredResults) {
    return absl::StrCat(names.size(), " results declared; at most ",
                        kMaxDeclaredResults);
  }
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (!IsName(name) || name.size() > kMaxResultNameBytes) {
      return absl::StrCat("result name '", absl::CHexEscape(name.substr(0, 80)),
                          "' is not 1 to ", kMaxResultNameBytes,
                          " characters of [A-Za-z0-9_-]");
    }
    if (!seen.insert(name).second) {
      return absl::StrCat("result '", name, "' is declared twice");
    }
  }
  return "";
}

std::string BranchSlug(absl::string_view branch) {
  std::string slug;
  for (char raw : branch) {
    char c = absl::ascii_tolower(static_cast<unsigned char>(raw));
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) {
      slug.push_back(c);
    } else if (!slug.empty() && slug.back() != '-') {
      slug.push_back('-');
    }
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  if (slug.size() > 63) {
    uint32_t hash = 2166136261u;
    for (char c : branch) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 16777619u;
    }
    slug.resize(54);
    while (!slug.empty() && slug.back() == '-') slug.pop_back();
    slug += absl::StrFormat("-%08x", hash);
  }
  if (slug.empty()) slug = "branch";
  return slug;
}

absl::StatusOr<std::string> Substitute(absl::string_view text,
                                       const SubstitutionContext& context) {
  std::string out;
  absl::Status s = Scan(
      text,
      [&out](absl::string_view lit) { out.append(lit.data(), lit.size()); },
      [&](const Reference& ref) -> absl::Status {
        switch (ref.kind) {
          case Reference::Kind::kParam: {
            auto it = context.params.find(ref.name);
            if (it == context.params.end()) {
              return absl::InvalidArgumentError(
                  absl::StrCat("unknown param in ", ref.text));
            }
            out += it->second;
            return absl::OkStatus();
          }
          case Reference::Kind::kTrigger: {
            const v1::Trigger& t = context.trigger;
            if (ref.name == "branch") {
              out += t.branch();
            } else if (ref.name == "branch_slug") {
              out += BranchSlug(t.branch());
            } else if (ref.name == "revision") {
              out += t.revision();
            } else if (ref.name == "event") {
              out += EventName(t.event());
            } else if (ref.name == "author") {
              out += t.author();
            } else if (ref.name == "commit_time") {
              out += std::to_string(t.commit_time());
            } else {
              return absl::InvalidArgumentError(
                  absl::StrCat("unknown trigger field in ", ref.text));
            }
            return absl::OkStatus();
          }
          case Reference::Kind::kTaskOutput: {
            auto task = context.task_outputs.find(ref.name);
            if (task != context.task_outputs.end()) {
              auto value = task->second.find(ref.key);
              if (value != task->second.end()) {
                out += value->second;
                return absl::OkStatus();
              }
            }
            return absl::FailedPreconditionError(
                absl::StrCat("no value for ", ref.text,
                             " (the task has not produced that output)"));
          }
          case Reference::Kind::kTaskResult: {
            auto task = context.task_outputs.find(ref.name);
            if (task != context.task_outputs.end()) {
              auto value = task->second.find(ResultKey(ref.key));
              if (value != task->second.end()) {
                out += value->second;
                return absl::OkStatus();
              }
            }
            return absl::FailedPreconditionError(
                absl::StrCat("no value for ", ref.text,
                             " (the task did not run, so it has no results)"));
          }
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Task> SubstituteTask(const v1::Task& task,
                                        const SubstitutionContext& context) {
  v1::Task out = task;
  absl::Status first = absl::OkStatus();
  ForEachTaskString(
      &out, "", [&](const std::string& path, std::string* value, FieldUse use) {
        if (!first.ok() || use == FieldUse::kLiteral) return;
        if (value->find('$') == std::string::npos) return;
        absl::StatusOr<std::string> replaced = Substitute(*value, context);
        if (!replaced.ok()) {
          first = absl::Status(
              replaced.status().code(),
              absl::StrCat(path, ": ", replaced.status().message()));
          return;
        }
        *value = *std::move(replaced);
      });
  if (!first.ok()) return first;
  return out;
}

}  // namespace kiln::pipeline
