// Maps an abstract conformance Program to argv for executors that run real
// processes with a POSIX /bin/sh and coreutils (the local sandbox, a pod).
#ifndef KILN_EXECUTORS_TESTING_SHELL_PROGRAM_H_
#define KILN_EXECUTORS_TESTING_SHELL_PROGRAM_H_

#include <string>
#include <vector>

#include "executors/testing/conformance.h"

namespace kiln {
namespace conformance {

// {"/bin/sh", "-c", SCRIPT}, or {"/usr/bin/env"} for a lone PrintEnv (a
// shell would add PWD to the environment).
std::vector<std::string> ShellArgv(const Program& program);

// `text` as one single-quoted shell word.
std::string ShellQuote(const std::string& text);

}  // namespace conformance
}  // namespace kiln

#endif  // KILN_EXECUTORS_TESTING_SHELL_PROGRAM_H_
