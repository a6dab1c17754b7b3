#include "engine/notify/body_template.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace kiln::notify {
namespace {

// Calls `literal` for text and `variable` for each ${NAME}, in order.
template <typename Literal, typename Variable>
absl::Status Scan(absl::string_view text, Literal literal, Variable variable) {
  size_t i = 0;
  while (i < text.size()) {
    size_t dollar = text.find('$', i);
    if (dollar == absl::string_view::npos) {
      literal(text.substr(i));
      break;
    }
    literal(text.substr(i, dollar - i));
    if (text.substr(dollar, 3) == "$${") {
      literal("${");
      i = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {
      literal("$");
      i = dollar + 1;
      continue;
    }
    size_t close = text.find('}', dollar + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unterminated \"${\" at offset ", dollar));
    }
    absl::string_view name = text.substr(dollar + 2, close - dollar - 2);
    if (name.empty()) return absl::InvalidArgumentError("empty \"${}\"");
    for (char c : name) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
          c != '_' && c != '-') {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed \"${...}\" at offset ", dollar,
                         " (names are letters, digits, '.', '_' and '-')"));
      }
    }
    absl::Status s = variable(name);
    if (!s.ok()) return s;
    i = close + 1;
  }
  return absl::OkStatus();
}

std::string Get(const std::map<std::string, std::string>& vars,
                const std::string& name) {
  auto it = vars.find(name);
  return it == vars.end() ? "" : it->second;
}

absl::Status Unknown(absl::string_view name) {
  return absl::InvalidArgumentError(
      absl::StrCat("unknown variable ${", name, "}"));
}

}  // namespace

const std::vector<std::string>& BodyVariables() {
  static const auto* names = new std::vector<std::string>{
      "run.id",        "run.state",      "run.url",          "run.reason",
      "pipeline.name", "trigger.branch", "trigger.revision", "trigger.author",
      "trigger.event", "failed_tasks",   "notify.on"};
  return *names;
}

std::string JsonEscape(absl::string_view value) {
  std::string quoted =
      nlohmann::json(std::string(value))
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

absl::StatusOr<std::vector<std::string>> TemplateVariables(
    absl::string_view text) {
  std::vector<std::string> out;
  absl::Status s = Scan(
      text, [](absl::string_view) {},
      [&](absl::string_view name) {
        out.emplace_back(name);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> RenderBody(
    absl::string_view text, const std::map<std::string, std::string>& vars) {
  std::string out;
  absl::Status s = Scan(
      text, [&](absl::string_view lit) { absl::StrAppend(&out, lit); },
      [&](absl::string_view name) {
        auto it = vars.find(std::string(name));
        if (it == vars.end()) return Unknown(name);
        absl::StrAppend(&out, JsonEscape(it->second));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  nlohmann::json parsed =
      nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(
        "the rendered body is not valid JSON (a ${...} belongs inside a "
        "JSON string: \"text\": \"${run.state}\")");
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError("the rendered body is not a JSON object");
  }
  return out;
}

absl::StatusOr<std::string> SubstituteVerbatim(
    absl::string_view text, const std::map<std::string, std::string>& vars) {
  std::string out;
  absl::Status s = Scan(
      text, [&](absl::string_view lit) { absl::StrAppend(&out, lit); },
      [&](absl::string_view name) {
        auto it = vars.find(std::string(name));
        if (it == vars.end()) return Unknown(name);
        absl::StrAppend(&out, it->second);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

std::string DefaultBody(const std::map<std::string, std::string>& vars) {
  std::string text =
      absl::StrCat(Get(vars, "pipeline.name"), ": run ", Get(vars, "run.id"),
                   " ", Get(vars, "notify.on"));
  if (!Get(vars, "trigger.branch").empty()) {
    absl::StrAppend(&text, " on ", Get(vars, "trigger.branch"));
  }
  if (!Get(vars, "trigger.revision").empty()) {
    absl::StrAppend(&text, " (", Get(vars, "trigger.revision").substr(0, 12),
                    ")");
  }
  if (!Get(vars, "failed_tasks").empty()) {
    absl::StrAppend(&text, "; failed: ", Get(vars, "failed_tasks"));
  }
  if (!Get(vars, "run.url").empty()) {
    absl::StrAppend(&text, " ", Get(vars, "run.url"));
  }
  nlohmann::json body = {{"text", text}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace kiln::notify
