// Shell completion for `kiln`: `kiln completion bash|zsh` prints a script
// that asks `kiln __complete INDEX WORD...` for the candidates of the word
// at INDEX (WORD[0] is the command itself).
//
// What is completed:
//   - the verb (word 1);
//   - a verb's flags, taken from `kiln VERB --help` (so they are never out
//     of date with the verb's own parser);
//   - values of a few flags: --event (kiln.v1.EventKind's names),
//     --param (NAME= of the pipeline's params);
//   - the TASK of `kiln logs RUN TASK` and `kiln artifacts RUN TASK`: the
//     task names of the pipeline in the current directory.
// Everything else (a FILE, a DIR, a free value) yields no candidates, and
// the scripts fall back to the shell's file completion.
#ifndef KILN_ENGINE_CLI_COMPLETION_H_
#define KILN_ENGINE_CLI_COMPLETION_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kiln::cli {

// A verb's flags as its --help lists them: name (without dashes) -> whether
// it takes a value.
using FlagSet = std::map<std::string, bool>;

// Parses the "flags:" section of a verb's --help text: lines
// "  --NAME VALUE  help" (takes a value) and "  --NAME  help" (boolean).
FlagSet ParseHelpFlags(absl::string_view help);

struct CompletionSources {
  std::vector<std::string> verbs;
  // The flags of a verb (empty for an unknown one).
  std::function<FlagSet(const std::string& verb)> flags;
  // The params and task names of a pipeline file ({} when it does not load).
  struct PipelineNames {
    std::vector<std::string> params, tasks;
  };
  std::function<PipelineNames(const std::string& file)> pipeline;
  // Whether a file exists (the pipeline of the current directory is the
  // first of kiln.yaml, pipeline.yaml that does).
  std::function<bool(const std::string& file)> exists;
};

// The candidates for words[index] (words[0] is "kiln"; index may equal
// words.size(), an empty word), filtered by its prefix, sorted.
std::vector<std::string> Complete(const std::vector<std::string>& words,
                                  size_t index,
                                  const CompletionSources& sources);

// The scripts `kiln completion SHELL` prints; "" for an unknown shell.
std::string CompletionScript(absl::string_view shell);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_COMPLETION_H_
