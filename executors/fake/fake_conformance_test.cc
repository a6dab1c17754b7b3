// The executor conformance suite against FakeExecutor: each abstract program
// becomes a FakeScript (files really are written into the workspace).
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "executors/fake/fake_executor.h"
#include "executors/testing/conformance.h"

namespace kiln {
namespace conformance {
namespace {

FakeScript ToScript(const Program& program, const v1::ExecRequest& request) {
  FakeScript script;
  for (const ProgramStep& step : program) {
    switch (step.op) {
      case ProgramStep::Op::kPrint:
        script.Stdout(step.text);
        break;
      case ProgramStep::Op::kPrintErr:
        script.Stderr(step.text);
        break;
      case ProgramStep::Op::kSleep:
        script.Delay(step.duration);
        break;
      case ProgramStep::Op::kWriteFile: {
        std::string path = step.path, text = step.text;
        script.Do([path, text](const v1::ExecRequest& r) {
          std::string dir = r.workspace();
          if (!r.workdir().empty()) absl::StrAppend(&dir, "/", r.workdir());
          std::ofstream(dir + "/" + path) << text;
        });
        break;
      }
      case ProgramStep::Op::kPrintEnv:
        for (const auto& [key, value] : request.env()) {
          script.Stdout(absl::StrCat(key, "=", value));
        }
        break;
      case ProgramStep::Op::kFlood:
        script.Flood("kiln-conformance-flood-line");
        break;
      case ProgramStep::Op::kIgnoreTerm:
        script.IgnoreTerm();
        break;
      case ProgramStep::Op::kPrintFile: {
        // Inputs are materialized before the behaviour is asked.
        std::ifstream in(absl::StrCat(request.workspace(), "/", step.path));
        std::stringstream content;
        content << in.rdbuf();
        script.Stdout(in ? content.str() : "(missing)");
        break;
      }
      case ProgramStep::Op::kBackgroundHolder:
        ADD_FAILURE() << "the fake runs no processes";
        break;
      case ProgramStep::Op::kExit:
        script.Exit(step.code);
        break;
    }
  }
  return script;
}

class FakeHarness : public ExecutorHarness {
 public:
  explicit FakeHarness(const ConformanceEnv& env)
      : fake_(HostWorkspaceOptions{env.work_root, env.artifacts}) {
    fake_.On("conformance-program", [this](const v1::ExecRequest& request) {
      MutexLock lock(&mu_);
      return ToScript(programs_.at(request.argv(1)), request);
    });
  }
  Executor* executor() override { return &fake_; }
  std::vector<std::string> Argv(const Program& program) override {
    MutexLock lock(&mu_);
    std::string token = absl::StrCat(programs_.size());
    programs_[token] = program;
    return {"conformance-program", token};
  }

 private:
  FakeExecutor fake_;
  Mutex mu_;
  std::map<std::string, Program> programs_ ABSL_GUARDED_BY(mu_);
};

INSTANTIATE_TEST_SUITE_P(Fake, ExecutorConformanceTest,
                         ::testing::Values(ExecutorFactory{
                             "fake",
                             [](const ConformanceEnv& env) {
                               return std::make_unique<FakeHarness>(env);
                             }}),
                         ExecutorFactoryName);

}  // namespace
}  // namespace conformance
}  // namespace kiln
