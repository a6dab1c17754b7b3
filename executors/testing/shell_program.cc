#include "executors/testing/shell_program.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace kiln {
namespace conformance {

std::string ShellQuote(const std::string& text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

std::vector<std::string> ShellArgv(const Program& program) {
  if (program.size() == 1 && program[0].op == ProgramStep::Op::kPrintEnv) {
    return {"/usr/bin/env"};
  }
  std::string script;
  for (const ProgramStep& step : program) {
    switch (step.op) {
      case ProgramStep::Op::kPrint:
        absl::StrAppend(&script, "printf '%s\\n' ", ShellQuote(step.text),
                        "\n");
        break;
      case ProgramStep::Op::kPrintErr:
        absl::StrAppend(&script, "printf '%s\\n' ", ShellQuote(step.text),
                        " >&2\n");
        break;
      case ProgramStep::Op::kSleep:
        absl::StrAppend(
            &script, "sleep ",
            absl::StrFormat("%.3f", absl::ToDoubleSeconds(step.duration)),
            "\n");
        break;
      case ProgramStep::Op::kWriteFile:
        absl::StrAppend(&script, "printf '%s' ", ShellQuote(step.text), " > ",
                        ShellQuote(step.path), "\n");
        break;
      case ProgramStep::Op::kPrintEnv:
        // Not reachable in a multi-step program without a shell's own
        // variables; print what env(1) sees.
        absl::StrAppend(&script, "/usr/bin/env\n");
        break;
      case ProgramStep::Op::kFlood:
        absl::StrAppend(&script, "exec yes kiln-conformance-flood-line\n");
        break;
      case ProgramStep::Op::kIgnoreTerm:
        absl::StrAppend(&script, "trap '' TERM\n");
        break;
      case ProgramStep::Op::kPrintFile:
        absl::StrAppend(&script, "cat ", ShellQuote(step.path),
                        " && printf '\\n'\n");
        break;
      case ProgramStep::Op::kBackgroundHolder:
        absl::StrAppend(&script,
                        "( trap '' TERM; printf x >&3; exec sleep 1000 ) 3>",
                        ShellQuote(step.path), " &\n");
        break;
      case ProgramStep::Op::kExit:
        absl::StrAppend(&script, "exit ", step.code, "\n");
        break;
    }
  }
  return {"/bin/sh", "-c", script};
}

}  // namespace conformance
}  // namespace kiln
