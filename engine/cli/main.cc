// kiln: the command line. Each verb lives in its own file and registers
// itself (verb.h); this file only dispatches.
#include <malloc.h>

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
  // glibc's heap grows and shrinks its top by 128 KiB by default: a run
  // that builds and drops large structures (the pipeline's YAML tree, a
  // batch of events) gave pages back and faulted fresh ones in again, each
  // fault costly on a VM (a 2,000-task no-op: 5,800 faults, 4,200 with these
  // settings, ~10 % less CPU; bench/README.md, fifth pass). The heap now
  // keeps up to 16 MiB spare at its top. Setting the pad fixes glibc's
  // otherwise adaptive mmap threshold, so it is set to that adaptation's
  // ceiling: blocks under 32 MiB (e.g. 1 MiB transfer buffers) come from
  // the heap and are reused, not mapped and unmapped each time.
  mallopt(M_TOP_PAD, 16 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
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
