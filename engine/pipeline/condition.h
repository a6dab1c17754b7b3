// `when` conditions over a trigger, with a human reason for the outcome.
//
// Semantics:
//   branch   StringMatch on Trigger.branch; default kind GLOB (glob.h).
//   message  StringMatch on Trigger.commit_message; default kind REGEX.
//            Regexes (RE2 syntax) search anywhere in the text (use ^/$ to
//            anchor); for messages ^ and $ also match at line breaks, so
//            "^shipit" holds when any line of the message starts "shipit"
//            (like Jenkins' `changelog`). EXACT compares whole strings.
//            `negate` inverts the match.
//   event    Trigger.event is one of the set.
//   param    the trigger's value of the param (with defaults applied; see
//            params.h) equals / does not equal / matches (RE2 search) a value.
//   result   a declared result of an earlier task (run.results) equals /
//            does not equal / matches a value. Known only at run time:
//            a `when` with a result condition is decided when its task is
//            ready to start (DependsOnResults), not when the run is planned;
//            a result that is absent (its task was skipped) does not hold.
//   all/any  every / at least one child holds (empty all: true, empty any:
//            false; validation rejects empty lists). not: inverts.
//   unset    true.
// Thread-safe; pure functions.
#ifndef KILN_ENGINE_PIPELINE_CONDITION_H_
#define KILN_ENGINE_PIPELINE_CONDITION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

struct ConditionResult {
  bool holds = true;
  // Why it holds or not, e.g. "branch 'main' does not match !main".
  std::string reason;
};

// task name -> result key -> value (the finished tasks' TaskStatus.results;
// declared results under ResultKey(NAME), substitute.h).
using TaskResultValues =
    std::map<std::string, std::map<std::string, std::string>>;

// `secret_params`: names whose values never appear in a reason. `results`:
// what result conditions see (nullptr: none is known, every one fails).
ConditionResult EvaluateCondition(
    const v1::Condition& condition, const v1::Trigger& trigger,
    const absl::flat_hash_set<std::string>& secret_params = {},
    const TaskResultValues* results = nullptr);

// True if `condition` has a result condition anywhere (then it can only be
// decided at run time).
bool DependsOnResults(const v1::Condition& condition);

// Appends the task of every result condition in `condition` to *tasks.
void ResultConditionTasks(const v1::Condition& condition,
                          std::vector<std::string>* tasks);

// EvaluateCondition calls made in this process, nested ones included (a
// test hook: a run's `when`s are evaluated once, when it is planned).
int64_t ConditionsEvaluatedForTesting();

// "" if the match's pattern compiles (regex or glob), else the error.
// `is_message` selects the default kind (REGEX) for KIND_UNSPECIFIED.
std::string CheckStringMatch(const v1::StringMatch& match, bool is_message);

// "" if `pattern` is a valid RE2 regex of at most 4096 bytes, else the error.
std::string CheckRegex(absl::string_view pattern);

// "push", "pull_request", "tag", "manual" ("unspecified" otherwise).
std::string EventName(v1::EventKind event);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_CONDITION_H_
