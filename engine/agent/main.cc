// kiln-agent: the agent inside a kiln pod (docs/kubernetes-agent.md).
//
//   kiln-agent --version
//   kiln-agent [--kiln DIR] [--kiln-out DIR] [--workspace DIR] fetch
//   kiln-agent [--kiln DIR] [--workspace DIR] [--kill-grace-ms N] run --
//   ARGV...
//
// Configuration comes from the environment the pod sets: KILN_AGENT_SPEC,
// KILN_AGENT_SERVER, KILN_AGENT_TOKEN, KILN_AGENT_CA (PEM, optional); the
// directories from KILN_AGENT_KILN_DIR, KILN_AGENT_OUT_DIR and
// KILN_AGENT_WORKSPACE unless given as flags.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "engine/agent/agent.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: kiln-agent --version\n"
               "       kiln-agent [--kiln DIR] [--kiln-out DIR] "
               "[--workspace DIR] fetch\n"
               "       kiln-agent [--kiln DIR] [--workspace DIR] "
               "[--kill-grace-ms N] run -- ARGV...\n");
  return 2;
}

std::string Env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::string(v);
}

}  // namespace

int main(int argc, char** argv) {
  kiln::agent::AgentConfig config;
  config.kiln_dir = Env("KILN_AGENT_KILN_DIR", config.kiln_dir);
  config.kiln_out_dir = Env("KILN_AGENT_OUT_DIR", config.kiln_out_dir);
  config.workspace = Env("KILN_AGENT_WORKSPACE", config.workspace);
  config.spec_json = Env("KILN_AGENT_SPEC");
  config.server = Env("KILN_AGENT_SERVER");
  config.token = Env("KILN_AGENT_TOKEN");
  config.ca_pem = Env("KILN_AGENT_CA");
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version") {
      std::printf("%s\n", kiln::agent::kVersion);
      return 0;
    }
    if (a.rfind("--", 0) != 0) break;
    if (i + 1 >= argc) return Usage();
    std::string value = argv[++i];
    if (a == "--kiln") {
      config.kiln_dir = value;
    } else if (a == "--kiln-out") {
      config.kiln_out_dir = value;
    } else if (a == "--workspace") {
      config.workspace = value;
    } else if (a == "--kill-grace-ms") {
      if (!absl::SimpleAtoi(value, &config.kill_grace_ms) ||
          config.kill_grace_ms < 0) {
        return Usage();
      }
    } else {
      std::fprintf(stderr, "kiln-agent: unknown flag %s\n", a.c_str());
      return Usage();
    }
  }
  if (i >= argc) return Usage();
  std::string verb = argv[i++];
  if (verb == "fetch") {
    if (i != argc) return Usage();
    return kiln::agent::Fetch(config);
  }
  if (verb == "run") {
    if (i >= argc || std::string(argv[i]) != "--") return Usage();
    std::vector<std::string> command(argv + i + 1, argv + argc);
    return kiln::agent::Run(config, command);
  }
  return Usage();
}
