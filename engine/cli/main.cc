// kiln: the command line. Each verb lives in its own file and registers
// itself (verb.h); this file only dispatches.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/cli/verb.h"

namespace kiln::cli {
namespace {

std::vector<Verb>& Registry() {
  static auto* verbs = new std::vector<Verb>();
  return *verbs;
}

void PrintHelp(FILE* out) {
  std::fprintf(out,
               "kiln: a declarative build and delivery engine\n\n"
               "usage: kiln VERB [flags] [args]\n\nverbs:\n");
  for (const Verb& v : Verbs()) {
    if (v.name[0] == '_') continue;  // __complete: the scripts' helper
    std::fprintf(out, "  %-10s %s\n", v.name, v.summary);
  }
  std::fprintf(out, "\n`kiln VERB --help` describes a verb.\n");
}

}  // namespace

bool RegisterVerb(const Verb& verb) {
  Registry().push_back(verb);
  return true;
}

std::vector<Verb> Verbs() {
  std::vector<Verb> v = Registry();
  std::sort(v.begin(), v.end(), [](const Verb& a, const Verb& b) {
    return std::strcmp(a.name, b.name) < 0;
  });
  return v;
}

}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  if (argc < 2) {
    PrintHelp(stderr);
    return kExitUsage;
  }
  std::string verb = argv[1];
  if (verb == "--help" || verb == "-h" || verb == "help") {
    PrintHelp(stdout);
    return kExitOk;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const Verb& v : Verbs()) {
    if (verb == v.name) return v.run(args);
  }
  std::fprintf(stderr, "kiln: unknown verb '%s'\n\n", verb.c_str());
  PrintHelp(stderr);
  return kExitUsage;
}
