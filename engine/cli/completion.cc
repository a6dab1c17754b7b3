#include "engine/cli/completion.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::cli {
namespace {

// Verbs whose positionals are RUN then TASK (a task of the pipeline).
bool TaskIsSecondPositional(absl::string_view verb) {
  return verb == "logs" || verb == "artifacts";
}

// Verbs whose first positional is a pipeline FILE.
bool FileIsFirstPositional(absl::string_view verb) {
  return verb == "run" || verb == "validate" || verb == "graph" ||
         verb == "submit";
}

// The trigger events, as `--event` and `when: {event: ...}` spell them: the
// kiln.v1.EventKind names in lower case.
std::vector<std::string> EventNames() {
  std::vector<std::string> names;
  const google::protobuf::EnumDescriptor* kinds = v1::EventKind_descriptor();
  for (int i = 0; i < kinds->value_count(); ++i) {
    if (kinds->value(i)->number() == 0) continue;  // unspecified
    names.push_back(absl::AsciiStrToLower(kinds->value(i)->name()));
  }
  return names;
}

void AddMatching(const std::vector<std::string>& all, absl::string_view prefix,
                 std::vector<std::string>* out) {
  for (const std::string& s : all) {
    if (absl::StartsWith(s, prefix)) out->push_back(s);
  }
}

}  // namespace

FlagSet ParseHelpFlags(absl::string_view help) {
  FlagSet flags;
  bool in_flags = false;
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    if (line == "flags:") {
      in_flags = true;
      continue;
    }
    if (!in_flags) continue;
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "  --")) continue;
    size_t end = rest.find(' ');
    std::string name(rest.substr(0, end));
    if (name.empty()) continue;
    bool takes_value = end != absl::string_view::npos &&
                       absl::StartsWith(rest.substr(end), " VALUE");
    flags[name] = takes_value;
  }
  return flags;
}

std::vector<std::string> Complete(const std::vector<std::string>& words,
                                  size_t index,
                                  const CompletionSources& sources) {
  std::vector<std::string> out;
  if (index == 0 || index > words.size()) return out;
  const std::string current = index < words.size() ? words[index] : "";
  if (index == 1) {
    if (absl::StartsWith(current, "-")) {
      AddMatching({"--help"}, current, &out);
    } else {
      AddMatching(sources.verbs, current, &out);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  const std::string& verb = words[1];
  if (std::find(sources.verbs.begin(), sources.verbs.end(), verb) ==
      sources.verbs.end()) {
    return out;
  }
  FlagSet flags = sources.flags(verb);

  // Walk the words before the current one: positionals, and whether the
  // word just before is a flag waiting for its value.
  std::vector<std::string> positionals;
  std::string pending_flag;
  for (size_t i = 2; i < index; ++i) {
    const std::string& w = words[i];
    if (!pending_flag.empty()) {
      pending_flag.clear();
      continue;
    }
    if (absl::StartsWith(w, "--") && w.size() > 2) {
      std::string name = w.substr(2);
      if (name.find('=') != std::string::npos) continue;  // --flag=value
      auto it = flags.find(name);
      if (it != flags.end() && it->second) pending_flag = name;
      continue;
    }
    positionals.push_back(w);
  }

  // The pipeline whose names are offered: the verb's FILE if it is given
  // and exists, else the one of the current directory.
  auto pipeline_file = [&]() -> std::string {
    if (FileIsFirstPositional(verb) && !positionals.empty() &&
        sources.exists(positionals[0])) {
      return positionals[0];
    }
    for (const char* name : {"kiln.yaml", "pipeline.yaml"}) {
      if (sources.exists(name)) return name;
    }
    return "";
  };

  if (!pending_flag.empty()) {
    if (pending_flag == "event") {
      AddMatching(EventNames(), current, &out);
    } else if (pending_flag == "param") {
      std::string file = pipeline_file();
      if (!file.empty()) {
        std::vector<std::string> names;
        for (const std::string& p : sources.pipeline(file).params) {
          names.push_back(p + "=");
        }
        AddMatching(names, current, &out);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  if (absl::StartsWith(current, "-")) {
    std::vector<std::string> names = {"--help"};
    for (const auto& [name, takes_value] : flags) names.push_back("--" + name);
    AddMatching(names, current, &out);
  } else if (TaskIsSecondPositional(verb) && positionals.size() == 1) {
    std::string file = pipeline_file();
    if (!file.empty()) AddMatching(sources.pipeline(file).tasks, current, &out);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string CompletionScript(absl::string_view shell) {
  if (shell == "bash") {
    return R"(# bash completion for kiln: add to ~/.bashrc
#   source <(kiln completion bash)
# Candidates come from `kiln __complete INDEX WORD...`; with none, bash
# completes file names.
_kiln_complete() {
  local IFS=$'\n' kiln="${COMP_WORDS[0]}"
  if [[ "${kiln}" == "~/"* ]]; then kiln="${HOME}/${kiln#\~/}"; fi
  COMPREPLY=($("${kiln}" __complete "${COMP_CWORD}" "${COMP_WORDS[@]}" 2>/dev/null))
  if [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *= ]]; then
    compopt -o nospace 2>/dev/null
  fi
}
complete -o default -o bashdefault -F _kiln_complete kiln
)";
  }
  if (shell == "zsh") {
    return R"(#compdef kiln
# zsh completion for kiln: add to ~/.zshrc, after compinit,
#   source <(kiln completion zsh)
# Candidates come from `kiln __complete INDEX WORD...`; with none, zsh
# completes file names.
_kiln() {
  local kiln="${words[1]}"
  local -a candidates
  candidates=("${(@f)$("${~kiln}" __complete $((CURRENT - 1)) "${words[@]}" 2>/dev/null)}")
  candidates=(${candidates:#})
  if (( ${#candidates} == 0 )); then
    _files
  elif (( ${#candidates} == 1 )) && [[ "${candidates[1]}" == *= ]]; then
    compadd -S '' -- "${candidates[@]}"
  else
    compadd -- "${candidates[@]}"
  fi
}
if (( ${+functions[compdef]} )); then
  compdef _kiln kiln
fi
)";
  }
  return "";
}

}  // namespace kiln::cli
