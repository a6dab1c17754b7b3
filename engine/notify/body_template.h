// The body of a pipeline notification: a JSON template whose ${NAME}
// variables are replaced by JSON-escaped values, and the default
// Slack-compatible {"text": ...} body.
//
// A value is escaped as the inside of a JSON string ("\"", "\\", control
// characters as \uXXXX, invalid UTF-8 replaced), so it is inert data: it
// can never close the string it sits in or add a key. "$${" is a literal
// "${". Pure functions; thread-safe.
#ifndef KILN_ENGINE_NOTIFY_BODY_TEMPLATE_H_
#define KILN_ENGINE_NOTIFY_BODY_TEMPLATE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::notify {

// The fixed variables a body may use (besides params.NAME): run.id,
// run.state, run.url, run.reason, pipeline.name, trigger.branch,
// trigger.revision, trigger.author, trigger.event, failed_tasks, notify.on.
const std::vector<std::string>& BodyVariables();

// The variable names `text` references, in order. InvalidArgument for an
// unterminated "${" or an empty name.
absl::StatusOr<std::vector<std::string>> TemplateVariables(
    absl::string_view text);

// `text` with each ${NAME} replaced by JSON-escape(vars[NAME]); the result
// must parse as a JSON object (what incoming webhooks take).
// InvalidArgument (naming the variable, never a value) for a variable
// not in `vars`, or for a result that is not valid JSON.
absl::StatusOr<std::string> RenderBody(
    absl::string_view text, const std::map<std::string, std::string>& vars);

// `text` with each ${NAME} replaced by vars[NAME] verbatim (for a URL).
// InvalidArgument for an unknown variable.
absl::StatusOr<std::string> SubstituteVerbatim(
    absl::string_view text, const std::map<std::string, std::string>& vars);

// The default body: {"text": "<pipeline>: run <id> <on> on branch <b>
// (<revision>) ..."} built from the same variables.
std::string DefaultBody(const std::map<std::string, std::string>& vars);

// `value` escaped as the inside of a JSON string (without quotes).
std::string JsonEscape(absl::string_view value);

}  // namespace kiln::notify

#endif  // KILN_ENGINE_NOTIFY_BODY_TEMPLATE_H_
