// Per-task checks: kind fields, conditions, artifacts, paths, env, refs.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/pipeline/substitute.h"
#include "engine/pipeline/suggest.h"
#include "engine/pipeline/task_strings.h"
#include "engine/pipeline/validate.h"
#include "engine/pipeline/validator.h"

namespace kiln::pipeline::internal {
namespace {

bool IsEnvName(const std::string& s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0])))
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

void Validator::CheckApproval(int t) {
  const v1::Approval& a = tasks_[t].task->approval();
  const std::string path = Field(tasks_[t].path, "approval");
  if (tasks_[t].is_finally) {
    Error(path, absl::StrCat(Who(t),
                             ": a finally task cannot wait for approval (it "
                             "runs within the finally budget, after failure "
                             "and cancellation too)"));
  }
  if (a.message().size() > kMaxApprovalMessageBytes) {
    Error(Field(path, "message"),
          absl::StrCat(Who(t), ": the approval message is longer than ",
                       kMaxApprovalMessageBytes, " bytes"));
  }
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < a.approvers_size(); ++i) {
    const std::string& who = a.approvers(i);
    std::string at = Index(Field(path, "approvers"), i);
    if (who.empty() || who.size() > 256 ||
        !std::all_of(who.begin(), who.end(), [](char c) {
          return absl::ascii_isgraph(static_cast<unsigned char>(c));
        })) {
      Error(at, absl::StrCat(Who(t), ": approver '", absl::CHexEscape(who),
                             "' is not a principal name (1 to 256 printable "
                             "characters, no spaces)"));
    } else if (!seen.insert(who).second) {
      Error(at, absl::StrCat(Who(t), ": approver '", who, "' is listed twice"));
    }
  }
  if (a.has_timeout()) {
    const auto& d = a.timeout();
    if (d.seconds() < 0 || d.nanos() < 0 ||
        (d.seconds() == 0 && d.nanos() == 0)) {
      Error(Field(path, "timeout"),
            absl::StrCat(Who(t),
                         ": the approval timeout must be positive "
                         "(leave it out for the default, 24h)"));
    } else if (d.seconds() > kMaxApprovalTimeoutSeconds ||
               (d.seconds() == kMaxApprovalTimeoutSeconds && d.nanos() > 0)) {
      Error(Field(path, "timeout"),
            absl::StrCat(Who(t), ": the approval timeout is longer than ",
                         kMaxApprovalTimeoutSeconds / 86400, " days"));
    }
  }
}

void Validator::Require(bool present, const std::string& path,
                        const std::string& field, int t) {
  if (!present) {
    Error(path, absl::StrCat(Who(t), ": missing required field '", field, "'"));
  }
}

void Validator::CheckRelativePath(const std::string& path,
                                  const std::string& value,
                                  const std::string& what, int t) {
  if (absl::StartsWith(value, "/")) {
    Error(path, absl::StrCat(Who(t), ": ", what, " '", value,
                             "' must be relative (it is absolute)"));
    return;
  }
  for (absl::string_view part : absl::StrSplit(value, '/')) {
    if (part == "..") {
      Error(path, absl::StrCat(Who(t), ": ", what, " '", value,
                               "' escapes its directory ('..')"));
      return;
    }
  }
  if (value.find('\0') != std::string::npos) {
    Error(path, absl::StrCat(Who(t), ": ", what, " contains a NUL byte"));
  }
}

void Validator::CheckEnv(
    const google::protobuf::RepeatedPtrField<v1::EnvVar>& env,
    const std::string& path, int t) {
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < env.size(); ++i) {
    std::string item = Index(path, i);
    const std::string& name = env[i].name();
    if (!IsEnvName(name)) {
      Error(Field(item, "name"),
            absl::StrCat(
                Who(t), ": invalid environment variable name '", name,
                "' (letters, digits and '_', not starting with a digit)"));
    } else if (!seen.insert(name).second) {
      Error(Field(item, "name"),
            absl::StrCat(Who(t), ": environment variable '", name,
                         "' is set twice"));
    }
    // A NUL byte cannot reach a process: execve() would cut the value.
    if (env[i].value().find('\0') != std::string::npos) {
      Error(Field(item, "value"),
            absl::StrCat(Who(t), ": the value of environment variable '", name,
                         "' contains a NUL byte (\\0)"));
    }
  }
}

// The per-task checks a kind runs, reported as task t's.
class TaskChecks : public KindChecks {
 public:
  TaskChecks(Validator* v, int t) : v_(v), t_(t) {}
  void Error(const std::string& path, const std::string& message) override {
    v_->Error(path, absl::StrCat(v_->Who(t_), ": ", message));
  }
  void Require(bool present, const std::string& path,
               const std::string& field) override {
    v_->Require(present, path, field, t_);
  }
  void RelativePath(const std::string& path, const std::string& value,
                    const std::string& what) override {
    v_->CheckRelativePath(path, value, what, t_);
  }
  void Env(const google::protobuf::RepeatedPtrField<v1::EnvVar>& env,
           const std::string& path) override {
    v_->CheckEnv(env, path, t_);
  }

 private:
  Validator* v_;
  int t_;
};

void Validator::CheckKind(int t) {
  const v1::Task& task = *tasks_[t].task;
  const std::string& path = tasks_[t].path;
  const KindSpec* kind = KindOf(task);
  if (kind == nullptr) {
    std::vector<std::string> names;
    for (const KindSpec* k : RegisteredKinds()) names.push_back(k->name());
    Error(path, absl::StrCat(Who(t), " has no kind; set exactly one of ",
                             absl::StrJoin(names, ", ")));
  } else {
    TaskChecks checks(this, t);
    kind->Validate(task, path, &checks);
    CheckSupported(*kind, t);
  }
  for (int i = 0; i < task.outputs_size(); ++i) {
    std::string item = Index(Field(path, "outputs"), i);
    Require(!task.outputs(i).artifact().empty(), item, "artifact", t);
    Require(!task.outputs(i).paths().empty(), item, "paths", t);
    for (int j = 0; j < task.outputs(i).paths_size(); ++j) {
      const std::string& value = task.outputs(i).paths(j);
      std::string ppath = Index(Field(item, "paths"), j);
      if (value.empty()) {
        Error(ppath, absl::StrCat(Who(t), ": an output path is empty"));
      } else {
        CheckRelativePath(ppath, value, "output path", t);
      }
    }
  }
  for (int i = 0; i < task.inputs_size(); ++i) {
    std::string item = Index(Field(path, "inputs"), i);
    Require(!task.inputs(i).artifact().empty(), item, "artifact", t);
    if (!task.inputs(i).path().empty()) {
      CheckRelativePath(Field(item, "path"), task.inputs(i).path(),
                        "input path", t);
    }
  }
}

void Validator::CheckCondition(const v1::Condition& c, const std::string& path,
                               int t) {
  switch (c.kind_case()) {
    case v1::Condition::kBranch:
    case v1::Condition::kMessage:
    case v1::Condition::kChangelog: {
      bool is_branch = c.kind_case() == v1::Condition::kBranch;
      bool is_message = !is_branch;
      const char* name = is_branch ? "branch"
                         : c.kind_case() == v1::Condition::kMessage
                             ? "message"
                             : "changelog";
      const v1::StringMatch& m =
          is_branch
              ? c.branch()
              : (c.kind_case() == v1::Condition::kMessage ? c.message()
                                                          : c.changelog());
      std::string p = Field(path, name);
      std::string error = CheckStringMatch(m, is_message);
      if (!error.empty())
        Error(Field(p, "pattern"), absl::StrCat(Who(t), ": ", error));
      break;
    }
    case v1::Condition::kEvent: {
      std::string p = Field(path, "event");
      if (c.event().events().empty()) {
        Error(p, absl::StrCat(Who(t),
                              ": an event condition needs at least one event"));
      }
      for (int i = 0; i < c.event().events_size(); ++i) {
        if (c.event().events(i) == v1::EVENT_KIND_UNSPECIFIED) {
          Error(Index(p, i), absl::StrCat(Who(t), ": event is unspecified"));
        }
      }
      break;
    }
    case v1::Condition::kParam: {
      std::string p = Field(path, "param");
      const v1::ParamMatch& m = c.param();
      std::vector<std::string> names;
      for (const v1::Param& param : p_.params()) names.push_back(param.name());
      if (m.name().empty()) {
        Require(false, p, "name", t);
      } else if (params_.find(m.name()) == params_.end()) {
        Error(Field(p, "name"),
              absl::StrCat(Who(t), ": condition on unknown param '", m.name(),
                           "'", DidYouMean(m.name(), names)));
      }
      if (m.test_case() == v1::ParamMatch::TEST_NOT_SET) {
        Error(p, absl::StrCat(Who(t),
                              ": a param condition needs one of equals, "
                              "not_equals or matches"));
      }
      if (m.test_case() == v1::ParamMatch::kMatches) {
        std::string error = CheckRegex(m.matches());
        if (!error.empty())
          Error(Field(p, "matches"), absl::StrCat(Who(t), ": ", error));
      }
      break;
    }
    case v1::Condition::kAll:
    case v1::Condition::kAny: {
      bool all = c.kind_case() == v1::Condition::kAll;
      const v1::ConditionList& list = all ? c.all() : c.any();
      std::string p = Field(path, all ? "all" : "any");
      if (list.conditions().empty()) {
        Error(p, absl::StrCat(Who(t), ": '", all ? "all" : "any",
                              "' needs at least one condition"));
      }
      for (int i = 0; i < list.conditions_size(); ++i) {
        CheckCondition(list.conditions(i), Index(p, i), t);
      }
      break;
    }
    case v1::Condition::kNot:
      CheckCondition(c.not_(), Field(path, "not"), t);
      break;
    case v1::Condition::kResult: {
      std::string p = Field(path, "result");
      const v1::ResultMatch& m = c.result();
      if (m.task().empty()) Require(false, p, "task", t);
      if (m.name().empty()) Require(false, p, "name", t);
      if (!m.task().empty() && !m.name().empty()) {
        CheckResultReference(m.task(), m.name(),
                             absl::StrCat("condition on result '", m.name(),
                                          "' of task '", m.task(), "'"),
                             Field(p, "task"), Field(p, "name"), t);
      }
      if (m.test_case() == v1::ResultMatch::TEST_NOT_SET) {
        Error(p, absl::StrCat(Who(t),
                              ": a result condition needs one of equals, "
                              "not_equals or matches"));
      } else if (m.test_case() == v1::ResultMatch::kMatches) {
        std::string error = CheckRegex(m.matches());
        if (!error.empty()) {
          Error(Field(p, "matches"), absl::StrCat(Who(t), ": ", error));
        }
      }
      break;
    }
    default:
      break;
  }
}

void Validator::IndexArtifacts() {
  for (int t = 0; t < static_cast<int>(tasks_.size()); ++t) {
    const v1::Task& task = *tasks_[t].task;
    std::vector<std::pair<std::string, std::string>> produced;  // name, path
    std::string kind_artifact = KindArtifact(task);
    if (!kind_artifact.empty()) {
      produced.push_back(
          {kind_artifact, Field(tasks_[t].path, KindName(task))});
    }
    for (int i = 0; i < task.outputs_size(); ++i) {
      if (task.outputs(i).artifact().empty()) continue;
      produced.push_back(
          {task.outputs(i).artifact(),
           Field(Index(Field(tasks_[t].path, "outputs"), i), "artifact")});
    }
    for (const auto& [name, path] : produced) {
      if (name == kSourceArtifact) {
        Error(path, absl::StrCat(Who(t),
                                 ": artifact 'source' is provided by the "
                                 "engine (the pipeline's directory); "
                                 "choose another name"));
        continue;
      }
      auto [it, inserted] = producer_.emplace(name, t);
      if (!inserted) {
        Error(path, absl::StrCat(Who(t), ": artifact '", name,
                                 "' is already produced by ", Who(it->second)));
      }
    }
  }
}

void Validator::CheckConsumed(const std::string& artifact,
                              const std::string& path, int t) {
  if (artifact.empty() || artifact == kSourceArtifact) return;
  auto it = producer_.find(artifact);
  if (it == producer_.end()) {
    std::vector<std::string> names = {kSourceArtifact};
    for (const auto& [name, task] : producer_) names.push_back(name);
    std::sort(names.begin(), names.end());
    Error(path, absl::StrCat(Who(t), ": no task produces artifact '", artifact,
                             "'", DidYouMean(artifact, names)));
    return;
  }
  int producer = it->second;
  if (producer == t) {
    Error(path, absl::StrCat(Who(t), " consumes artifact '", artifact,
                             "' that it produces itself"));
    return;
  }
  // A finally task may consume what any regular task produced (it is absent
  // at run time if that task did not succeed).
  if (tasks_[t].is_finally && !tasks_[producer].is_finally) return;
  if (!IsAncestor(producer, t)) {
    Error(path, absl::StrCat(Who(t), " consumes artifact '", artifact,
                             "' produced by ", Who(producer),
                             ", which it does not need (add '",
                             tasks_[producer].task->name(), "' to its needs)"));
  }
}

void Validator::CheckArtifacts(int t) {
  const v1::Task& task = *tasks_[t].task;
  const std::string& path = tasks_[t].path;
  for (int i = 0; i < task.inputs_size(); ++i) {
    CheckConsumed(task.inputs(i).artifact(),
                  Field(Index(Field(path, "inputs"), i), "artifact"), t);
  }
  if (const KindSpec* kind = KindOf(task)) {
    for (const ConsumedArtifact& c : kind->Facts(task).consumed) {
      CheckConsumed(c.artifact, Field(path, c.field), t);
    }
  }
}

void Validator::CheckSupported(const KindSpec& kind, int t) {
  if (p_.options().unsupported() == v1::SKIP) return;
  absl::optional<Refusal> refusal = kind.Unsupported(*tasks_[t].task, caps_);
  if (!refusal.has_value()) return;
  Error(Field(tasks_[t].path, refusal->field),
        absl::StrCat(Who(t), ": ", refusal->reason,
                     " (set options.unsupported: skip to skip them)"));
}

void Validator::CheckResultReference(const std::string& producer_name,
                                     const std::string& result,
                                     const std::string& what,
                                     const std::string& task_path,
                                     const std::string& result_path, int t) {
  auto it = by_name_.find(producer_name);
  if (it == by_name_.end()) {
    std::vector<std::string> names;
    for (const TaskRef& r : tasks_) names.push_back(r.task->name());
    Error(task_path,
          absl::StrCat(Who(t), ": ", what, " names unknown task '",
                       producer_name, "'", DidYouMean(producer_name, names)));
    return;
  }
  int producer = it->second;
  bool visible =
      producer != t && (IsAncestor(producer, t) ||
                        (tasks_[t].is_finally && !tasks_[producer].is_finally));
  if (!visible) {
    Error(task_path,
          absl::StrCat(Who(t), ": ", what, " refers to task '", producer_name,
                       "', which is not among the tasks it needs (directly "
                       "or indirectly; add '",
                       producer_name, "' to its needs)"));
    return;
  }
  std::vector<std::string> declared = DeclaredResults(*tasks_[producer].task);
  if (std::find(declared.begin(), declared.end(), result) == declared.end()) {
    Error(result_path,
          absl::StrCat(
              Who(t), ": ", what, ": task '", producer_name,
              "' declares no result '", result, "'",
              declared.empty()
                  ? std::string("; it declares none (run.results)")
                  : absl::StrCat("; declared: ", absl::StrJoin(declared, ", "),
                                 DidYouMean(result, declared))));
  }
}

void Validator::CheckReferences(int t) {
  v1::Task copy = *tasks_[t].task;
  std::vector<std::string> param_names;
  for (const v1::Param& p : p_.params()) param_names.push_back(p.name());
  ForEachTaskString(
      &copy, tasks_[t].path,
      [&](const std::string& path, std::string* value, FieldUse use) {
        if (value->find("${") == std::string::npos) return;
        if (use == FieldUse::kLiteral) {
          Error(path, absl::StrCat(Who(t),
                                   ": references (${...}) are not "
                                   "substituted in this field"));
          return;
        }
        std::vector<Reference> refs;
        absl::Status s = ParseReferences(*value, &refs);
        if (!s.ok()) {
          Error(path, absl::StrCat(Who(t), ": ", s.message()));
          return;
        }
        for (const Reference& ref : refs) {
          switch (ref.kind) {
            case Reference::Kind::kParam: {
              auto it = params_.find(ref.name);
              if (it == params_.end()) {
                Error(path,
                      absl::StrCat(Who(t), ": ", ref.text,
                                   " names unknown param '", ref.name, "'",
                                   DidYouMean(ref.name, param_names)));
              } else if (it->second->secret() && use != FieldUse::kSecretEnv) {
                Error(path,
                      absl::StrCat(Who(t), ": secret param '", ref.name,
                                   "' may only be used in run.env values and "
                                   "containerize.auth.password"));
              }
              break;
            }
            case Reference::Kind::kTrigger:
              if (std::find(TriggerFields().begin(), TriggerFields().end(),
                            ref.name) == TriggerFields().end()) {
                Error(path,
                      absl::StrCat(
                          Who(t), ": ", ref.text,
                          " names unknown trigger field '", ref.name,
                          "'; known: ", absl::StrJoin(TriggerFields(), ", "),
                          DidYouMean(ref.name, TriggerFields())));
              }
              break;
            case Reference::Kind::kTaskResult:
              CheckResultReference(ref.name, ref.key, ref.text, path, path, t);
              break;
            case Reference::Kind::kTaskOutput: {
              auto it = by_name_.find(ref.name);
              if (it == by_name_.end()) {
                std::vector<std::string> names;
                for (const TaskRef& r : tasks_) names.push_back(r.task->name());
                Error(path, absl::StrCat(Who(t), ": ", ref.text,
                                         " names unknown task '", ref.name, "'",
                                         DidYouMean(ref.name, names)));
                break;
              }
              int producer = it->second;
              bool visible =
                  producer != t &&
                  (IsAncestor(producer, t) ||
                   (tasks_[t].is_finally && !tasks_[producer].is_finally));
              if (!visible) {
                Error(path, absl::StrCat(Who(t), ": ", ref.text,
                                         " refers to task '", ref.name,
                                         "', which is not among the tasks it "
                                         "needs (directly or indirectly)"));
                break;
              }
              std::vector<std::string> keys =
                  OutputKeys(*tasks_[producer].task);
              if (std::find(keys.begin(), keys.end(), ref.key) == keys.end()) {
                Error(path, absl::StrCat(
                                Who(t), ": ", ref.text, ": a ",
                                KindName(*tasks_[producer].task),
                                " task has no output '", ref.key, "'",
                                keys.empty()
                                    ? std::string("; it has no outputs")
                                    : absl::StrCat("; known: ",
                                                   absl::StrJoin(keys, ", "),
                                                   DidYouMean(ref.key, keys))));
              }
              break;
            }
          }
        }
      });
}

}  // namespace kiln::pipeline::internal
