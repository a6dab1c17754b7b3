// `kiln completion bash|zsh` and the `kiln __complete` helper its scripts
// call (engine/cli/completion.h).
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "engine/cli/args.h"
#include "engine/cli/completion.h"
#include "engine/cli/verb.h"
#include "engine/pipeline/loader.h"

extern char** environ;

namespace kiln::cli {
namespace {

// Help texts are a few KB; anything beyond this is not a help text.
constexpr size_t kMaxHelpBytes = 1 << 20;

// The stdout of `kiln VERB --help` (this same binary), "" on any failure.
std::string VerbHelp(const std::string& verb) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return "";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  std::string self = "/proc/self/exe";
  std::vector<char*> argv = {self.data(), const_cast<char*>(verb.c_str()),
                             const_cast<char*>("--help"), nullptr};
  pid_t pid = 0;
  int err =
      posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  std::string out;
  if (err == 0) {
    char buf[4096];
    for (;;) {
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (out.size() < kMaxHelpBytes) out.append(buf, static_cast<size_t>(n));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  close(fds[0]);
  return out;
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

CompletionSources::PipelineNames PipelineNames(const std::string& file) {
  pipeline::LoadOptions options = pipeline::LoadOptions::LocalFile();
  options.validate = false;
  pipeline::LoadedPipeline loaded = pipeline::LoadPipelineFile(file, options);
  CompletionSources::PipelineNames names;
  for (const auto& p : loaded.pipeline.params()) {
    if (!p.name().empty()) names.params.push_back(p.name());
  }
  for (const auto* list :
       {&loaded.pipeline.tasks(), &loaded.pipeline.finally()}) {
    for (const auto& t : *list) {
      if (!t.name().empty()) names.tasks.push_back(t.name());
    }
  }
  return names;
}

int RunCompletion(const std::vector<std::string>& argv) {
  Args args(
      "kiln completion bash|zsh\n\n"
      "Prints a shell completion script: verbs, each verb's flags, --event "
      "and --param values, and the task names of the pipeline in the current "
      "directory (kiln.yaml or pipeline.yaml). Load it with\n"
      "  source <(kiln completion bash)    # in ~/.bashrc\n"
      "  source <(kiln completion zsh)     # in ~/.zshrc, after compinit");
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 1) {
    return args.UsageError("completion takes one SHELL: bash or zsh");
  }
  std::string script = CompletionScript(args.positionals()[0]);
  if (script.empty()) {
    return args.UsageError("unknown shell '" + args.positionals()[0] +
                           "' (bash or zsh)");
  }
  std::fputs(script.c_str(), stdout);
  return kExitOk;
}

// `kiln __complete INDEX WORD...`: one candidate per line. Never fails
// loudly: a shell asked for candidates, and no candidates is the answer.
int RunComplete(const std::vector<std::string>& argv) {
  size_t index = 0;
  if (argv.empty() || !absl::SimpleAtoi(argv[0], &index)) return kExitUsage;
  std::vector<std::string> words(argv.begin() + 1, argv.end());
  CompletionSources sources;
  for (const Verb& v : Verbs()) {
    if (!absl::StartsWith(v.name, "__")) sources.verbs.push_back(v.name);
  }
  sources.flags = [](const std::string& verb) {
    return ParseHelpFlags(VerbHelp(verb));
  };
  sources.pipeline = PipelineNames;
  sources.exists = IsRegularFile;
  for (const std::string& c : Complete(words, index, sources)) {
    std::printf("%s\n", c.c_str());
  }
  return kExitOk;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(completion, "completion", "print a bash or zsh completion script",
              kiln::cli::RunCompletion);
KILN_CLI_VERB(complete, "__complete", "(the completion scripts' helper)",
              kiln::cli::RunComplete);
