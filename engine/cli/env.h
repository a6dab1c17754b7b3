// `kiln env SUBCOMMAND ...`: environments of a pipeline (docs/environments.md).
// Subcommands register themselves in a table, like the verbs (verb.h):
// env.cc adds `destroy` and `gc`; other files may add theirs.
#ifndef KILN_ENGINE_CLI_ENV_H_
#define KILN_ENGINE_CLI_ENV_H_

#include <string>
#include <vector>

namespace kiln::cli {

struct EnvSubcommand {
  const char* name;
  const char* summary;  // one line, for `kiln env --help`
  // args excludes "env" and the subcommand's name. Exit codes as verb.h.
  int (*run)(const std::vector<std::string>& args);
};

// Registers at static-initialization time. Returns true.
bool RegisterEnvSubcommand(const EnvSubcommand& sub);

}  // namespace kiln::cli

#define KILN_ENV_SUBCOMMAND(ident, name, summary, fn)       \
  static const bool kiln_env_sub_##ident [[maybe_unused]] = \
      ::kiln::cli::RegisterEnvSubcommand(                   \
          ::kiln::cli::EnvSubcommand{name, summary, fn})

#endif  // KILN_ENGINE_CLI_ENV_H_
