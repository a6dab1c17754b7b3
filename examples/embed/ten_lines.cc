// The library in a few lines: README.md shows main() verbatim, and
// //examples/embed:readme_test keeps the two equal and runs this program.
#include <cstdio>

#include "api/kiln.h"

int main(int argc, char** argv) {
  kiln::PipelineBuilder p("hello");
  p.Run("greet", {"/bin/sh", "-c", "echo hello > out.txt"})
      .Output("greeting", {"out.txt"});
  p.Run("show", {"cat", "out.txt"}).Needs("greet").Input("greeting");
  kiln::EngineOptions options;
  options.store_dir = argc > 1 ? argv[1] : "/var/tmp/kiln-store";
  options.executor = *kiln::LocalSandboxExecutor::Create({});
  kiln::RunRequest request;
  request.pipeline = *p.Build();  // every problem at once, or it stops here
  auto engine = kiln::Engine::Create(std::move(options));
  auto run = (*engine)->Submit(std::move(request));
  (*run)->Subscribe(0, [](const kiln::v1::RunEvent& e) {
    if (e.has_log()) std::puts(e.log().text().c_str());
  });
  return (*run)->Wait().state() == kiln::v1::RUN_SUCCEEDED ? 0 : 1;
}
