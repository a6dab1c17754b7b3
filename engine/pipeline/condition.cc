#include "engine/pipeline/condition.h"

#include <atomic>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/glob.h"
#include "engine/pipeline/substitute.h"
#include "re2/re2.h"

namespace kiln::pipeline {
namespace {

constexpr size_t kMaxRegexBytes = 4096;

RE2::Options RegexOptions() {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);
  return options;
}

bool Search(absl::string_view pattern, absl::string_view text,
            bool multi_line) {
  if (pattern.size() > kMaxRegexBytes) return false;
  // (?m): ^ and $ also match at line breaks.
  std::string p =
      multi_line ? absl::StrCat("(?m)", pattern) : std::string(pattern);
  RE2 re(p, RegexOptions());
  if (!re.ok()) return false;
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), re);
}

v1::StringMatch::Kind EffectiveKind(const v1::StringMatch& m, bool is_message) {
  if (m.kind() != v1::StringMatch::KIND_UNSPECIFIED) return m.kind();
  return is_message ? v1::StringMatch::REGEX : v1::StringMatch::GLOB;
}

std::string DescribeMatch(const v1::StringMatch& m, bool is_message) {
  std::string spec;
  switch (EffectiveKind(m, is_message)) {
    case v1::StringMatch::REGEX:
      spec = absl::StrCat("regex /", m.pattern(), "/");
      break;
    case v1::StringMatch::EXACT:
      spec = absl::StrCat("exactly '", m.pattern(), "'");
      break;
    default:
      spec = m.pattern();
  }
  return m.negate() ? absl::StrCat("!", spec) : spec;
}

// The first line of `text`, at most 60 bytes, for reasons.
std::string Shorten(absl::string_view text) {
  absl::string_view first = text.substr(0, text.find('\n'));
  bool cut = first.size() < text.size() || first.size() > 60;
  return absl::StrCat(first.substr(0, 60), cut ? "..." : "");
}

ConditionResult EvaluateStringMatch(const v1::StringMatch& m,
                                    absl::string_view what,
                                    absl::string_view value, bool is_message) {
  bool matched = false;
  switch (EffectiveKind(m, is_message)) {
    case v1::StringMatch::REGEX:
      matched = Search(m.pattern(), value, is_message);
      break;
    case v1::StringMatch::EXACT:
      matched = value == m.pattern();
      break;
    default:
      matched = GlobMatch(m.pattern(), value);
  }
  bool holds = matched != m.negate();
  return {holds, absl::StrCat(what, " '", Shorten(value), "' ",
                              holds ? "matches " : "does not match ",
                              DescribeMatch(m, is_message))};
}

// Holds when any changelog message matches (negated: when none does).
ConditionResult EvaluateChangelog(const v1::StringMatch& m,
                                  const v1::Trigger& trigger) {
  std::vector<std::string> messages(trigger.changelog().begin(),
                                    trigger.changelog().end());
  if (messages.empty()) messages.push_back(trigger.commit_message());
  v1::StringMatch positive = m;
  positive.set_negate(false);
  for (const std::string& message : messages) {
    ConditionResult r =
        EvaluateStringMatch(positive, "changelog entry", message, true);
    if (r.holds) {
      return {!m.negate(),
              m.negate() ? absl::StrCat(r.reason, ", but must not") : r.reason};
    }
  }
  bool holds = m.negate();
  return {holds, absl::StrCat("no changelog entry (", messages.size(),
                              messages.size() == 1 ? " commit" : " commits",
                              ") matches ", DescribeMatch(positive, true))};
}

ConditionResult EvaluateEvents(const v1::EventSet& set, v1::EventKind event) {
  std::vector<std::string> names;
  bool holds = false;
  for (int e : set.events()) {
    names.push_back(EventName(static_cast<v1::EventKind>(e)));
    holds = holds || e == event;
  }
  std::string allowed =
      names.size() == 1
          ? names.front()
          : absl::StrCat("one of [", absl::StrJoin(names, ", "), "]");
  return {holds, absl::StrCat("event ", EventName(event),
                              holds ? " is " : " is not ", allowed)};
}

ConditionResult EvaluateParam(const v1::ParamMatch& m,
                              const v1::Trigger& trigger, bool secret) {
  auto it = trigger.params().find(m.name());
  std::string value = it == trigger.params().end() ? "" : it->second;
  std::string shown =
      secret ? "(secret)" : absl::StrCat("'", Shorten(value), "'");
  auto hidden = [secret](const std::string& v) {
    return secret ? std::string("the expected value")
                  : absl::StrCat("'", v, "'");
  };
  std::string prefix = absl::StrCat("param ", m.name(), " ");
  switch (m.test_case()) {
    case v1::ParamMatch::kEquals: {
      bool holds = value == m.equals();
      return {holds, holds ? absl::StrCat(prefix, "is ", hidden(m.equals()))
                           : absl::StrCat(prefix, shown, " is not ",
                                          hidden(m.equals()))};
    }
    case v1::ParamMatch::kNotEquals: {
      bool holds = value != m.not_equals();
      return {holds, holds
                         ? absl::StrCat(prefix, shown, " is not ",
                                        hidden(m.not_equals()))
                         : absl::StrCat(prefix, "is ", hidden(m.not_equals()))};
    }
    case v1::ParamMatch::kMatches: {
      bool holds = Search(m.matches(), value, false);
      return {holds, absl::StrCat(prefix, shown,
                                  holds ? " matches" : " does not match",
                                  " regex /", m.matches(), "/")};
    }
    default:
      return {true, absl::StrCat(prefix, "has no test")};
  }
}

ConditionResult EvaluateResult(const v1::ResultMatch& m,
                               const TaskResultValues* results) {
  std::string prefix =
      absl::StrCat("result ", m.name(), " of task ", m.task(), " ");
  const std::string* value = nullptr;
  if (results != nullptr) {
    auto task = results->find(m.task());
    if (task != results->end()) {
      auto it = task->second.find(ResultKey(m.name()));
      if (it != task->second.end()) value = &it->second;
    }
  }
  if (value == nullptr) {
    return {false, absl::StrCat(prefix, "is absent (the task did not run)")};
  }
  std::string shown = absl::StrCat("'", Shorten(*value), "'");
  switch (m.test_case()) {
    case v1::ResultMatch::kEquals: {
      bool holds = *value == m.equals();
      return {holds, holds ? absl::StrCat(prefix, "is '", m.equals(), "'")
                           : absl::StrCat(prefix, shown, " is not '",
                                          m.equals(), "'")};
    }
    case v1::ResultMatch::kNotEquals: {
      bool holds = *value != m.not_equals();
      return {holds, holds ? absl::StrCat(prefix, shown, " is not '",
                                          m.not_equals(), "'")
                           : absl::StrCat(prefix, "is '", m.not_equals(), "'")};
    }
    case v1::ResultMatch::kMatches: {
      bool holds = Search(m.matches(), *value, false);
      return {holds, absl::StrCat(prefix, shown,
                                  holds ? " matches" : " does not match",
                                  " regex /", m.matches(), "/")};
    }
    default:
      return {true, absl::StrCat(prefix, "has no test")};
  }
}

}  // namespace

void ResultConditionTasks(const v1::Condition& c,
                          std::vector<std::string>* tasks) {
  switch (c.kind_case()) {
    case v1::Condition::kResult:
      tasks->push_back(c.result().task());
      break;
    case v1::Condition::kAll:
      for (const v1::Condition& child : c.all().conditions()) {
        ResultConditionTasks(child, tasks);
      }
      break;
    case v1::Condition::kAny:
      for (const v1::Condition& child : c.any().conditions()) {
        ResultConditionTasks(child, tasks);
      }
      break;
    case v1::Condition::kNot:
      ResultConditionTasks(c.not_(), tasks);
      break;
    default:
      break;
  }
}

bool DependsOnResults(const v1::Condition& c) {
  std::vector<std::string> tasks;
  ResultConditionTasks(c, &tasks);
  return !tasks.empty();
}

std::string EventName(v1::EventKind event) {
  switch (event) {
    case v1::PUSH:
      return "push";
    case v1::PULL_REQUEST:
      return "pull_request";
    case v1::TAG:
      return "tag";
    case v1::MANUAL:
      return "manual";
    case v1::PULL_REQUEST_CLOSED:
      return "pull_request_closed";
    case v1::BRANCH_DELETED:
      return "branch_deleted";
    default:
      return "unspecified";
  }
}

std::string CheckRegex(absl::string_view pattern) {
  if (pattern.size() > kMaxRegexBytes) {
    return absl::StrCat("regex of ", pattern.size(),
                        " bytes exceeds the limit of ", kMaxRegexBytes);
  }
  RE2 re(re2::StringPiece(pattern.data(), pattern.size()), RegexOptions());
  if (!re.ok())
    return absl::StrCat("invalid regex /", pattern, "/: ", re.error());
  return "";
}

std::string CheckStringMatch(const v1::StringMatch& match, bool is_message) {
  switch (EffectiveKind(match, is_message)) {
    case v1::StringMatch::REGEX:
      return CheckRegex(match.pattern());
    case v1::StringMatch::EXACT:
      return "";
    default: {
      std::string error = CheckGlob(match.pattern());
      if (error.empty()) return "";
      return absl::StrCat("invalid glob '", match.pattern(), "': ", error);
    }
  }
}

namespace {
std::atomic<int64_t> conditions_evaluated{0};
}  // namespace

int64_t ConditionsEvaluatedForTesting() { return conditions_evaluated.load(); }

ConditionResult EvaluateCondition(
    const v1::Condition& c, const v1::Trigger& trigger,
    const absl::flat_hash_set<std::string>& secret_params,
    const TaskResultValues* results) {
  conditions_evaluated.fetch_add(1, std::memory_order_relaxed);
  switch (c.kind_case()) {
    case v1::Condition::kBranch:
      return EvaluateStringMatch(c.branch(), "branch", trigger.branch(), false);
    case v1::Condition::kMessage:
      return EvaluateStringMatch(c.message(), "message",
                                 trigger.commit_message(), true);
    case v1::Condition::kChangelog:
      return EvaluateChangelog(c.changelog(), trigger);
    case v1::Condition::kEvent:
      return EvaluateEvents(c.event(), trigger.event());
    case v1::Condition::kParam:
      return EvaluateParam(c.param(), trigger,
                           secret_params.contains(c.param().name()));
    case v1::Condition::kResult:
      return EvaluateResult(c.result(), results);
    case v1::Condition::kAll: {
      std::vector<std::string> reasons;
      for (const v1::Condition& child : c.all().conditions()) {
        ConditionResult r =
            EvaluateCondition(child, trigger, secret_params, results);
        if (!r.holds) return r;
        reasons.push_back(std::move(r.reason));
      }
      return {true, absl::StrJoin(reasons, " and ")};
    }
    case v1::Condition::kAny: {
      std::vector<std::string> reasons;
      for (const v1::Condition& child : c.any().conditions()) {
        ConditionResult r =
            EvaluateCondition(child, trigger, secret_params, results);
        if (r.holds) return r;
        reasons.push_back(std::move(r.reason));
      }
      if (reasons.empty()) return {false, "no alternative in any: []"};
      return {false,
              absl::StrCat("none holds: ", absl::StrJoin(reasons, "; "))};
    }
    case v1::Condition::kNot: {
      ConditionResult r =
          EvaluateCondition(c.not_(), trigger, secret_params, results);
      return {!r.holds, absl::StrCat("not(", r.reason, ")")};
    }
    default:
      return {true, "no condition"};
  }
}

}  // namespace kiln::pipeline
