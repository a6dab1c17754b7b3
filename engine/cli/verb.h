// The `kiln` command's verbs register themselves here; main() dispatches.
//
// Exit codes, for every verb: 0 success, 1 the work failed (invalid pipeline,
// failed task, failed render), 2 usage error.
#ifndef KILN_ENGINE_CLI_VERB_H_
#define KILN_ENGINE_CLI_VERB_H_

#include <string>
#include <vector>

namespace kiln::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Verb {
  const char* name;
  const char* summary;  // one line, for `kiln --help`
  // args excludes the program name and the verb itself.
  int (*run)(const std::vector<std::string>& args);
};

// Registers a verb at static-initialization time. Returns true.
bool RegisterVerb(const Verb& verb);

// Every registered verb, sorted by name.
std::vector<Verb> Verbs();

}  // namespace kiln::cli

#define KILN_CLI_VERB(ident, name, summary, fn)              \
  static const bool kiln_cli_verb_##ident [[maybe_unused]] = \
      ::kiln::cli::RegisterVerb(::kiln::cli::Verb{name, summary, fn})

#endif  // KILN_ENGINE_CLI_VERB_H_
