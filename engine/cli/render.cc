// `kiln render DIR`: prints the kustomization in DIR as `kubectl kustomize`
// would (engine/render/render.h).
#include "engine/render/render.h"

#include <cstdio>
#include <string>
#include <vector>

#include "engine/cli/args.h"
#include "engine/cli/verb.h"

namespace kiln::cli {
namespace {

int RunRender(const std::vector<std::string>& argv) {
  Args args(
      "kiln render DIR\n\n"
      "Renders the kustomization in DIR (kustomization.yaml, bases, overlays,\n"
      "components, generators, patches) and prints the YAML stream, exactly\n"
      "as `kubectl kustomize DIR` does. Remote bases are not supported.\n");
  int code = kExitOk;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 1) {
    return args.UsageError("render takes exactly one directory");
  }
  absl::StatusOr<std::string> out =
      render::RenderKustomization(args.positionals()[0]);
  if (!out.ok()) {
    std::fprintf(stderr, "kiln render: %s\n",
                 std::string(out.status().message()).c_str());
    return kExitFailed;
  }
  std::fwrite(out->data(), 1, out->size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(render, "render",
              "print a kustomization's manifests (like kubectl kustomize)",
              kiln::cli::RunRender);
