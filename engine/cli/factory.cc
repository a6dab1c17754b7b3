// `kiln factory plan|apply FILE`: factories as code (docs/factories.md).
// plan prints what applying FILE would change in the cluster; apply makes it
// so — idempotently (an up-to-date cluster gets no write request), pruning
// what the file no longer declares, never deleting a permanent namespace.
// Secret values (from --secrets-dir) are never printed.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cli/args.h"
#include "engine/cli/verb.h"
#include "engine/factory/apply.h"
#include "engine/factory/desired.h"
#include "engine/factory/loader.h"
#include "engine/factory/plan.h"
#include "engine/source/secrets.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"

namespace kiln::cli {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "kiln factory: %s\n", message.c_str());
  return kExitFailed;
}

int RunFactory(const std::vector<std::string>& argv) {
  Args args(
      "kiln factory plan FILE [--kubeconfig F] [--kube-context C]\n"
      "                              [--secrets-dir DIR]\n"
      "       kiln factory apply FILE [same flags]\n\n"
      "plan prints what applying the factory file FILE would change in the\n"
      "cluster (create / update with the changed fields / delete / keep);\n"
      "apply makes the cluster match: namespaces first, then their objects;\n"
      "objects of the factory that FILE no longer declares are deleted, but\n"
      "never a permanent namespace. A second apply changes nothing. Secret\n"
      "values come from --secrets-dir (one file per kiln secret) and are\n"
      "never printed. See docs/factories.md.\n");
  args.Flag("kubeconfig",
            "kubeconfig file (default $KUBECONFIG, ~/.kube/config, else the "
            "in-cluster service account)");
  args.Flag("kube-context", "kubeconfig context (default current-context)");
  args.Flag("secrets-dir",
            "directory of kiln secrets, one file per secret (mode 0700)");
  int code = kExitOk;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 2 ||
      (args.positionals()[0] != "plan" && args.positionals()[0] != "apply")) {
    return args.UsageError("factory takes plan|apply and one FILE");
  }
  const bool apply = args.positionals()[0] == "apply";
  const std::string file = args.positionals()[1];
  if (args.Has("kubeconfig") && args.Get("kubeconfig").empty()) {
    return args.UsageError("--kubeconfig needs a FILE");
  }

  source::Secrets secrets;
  if (args.Has("secrets-dir")) {
    absl::StatusOr<source::Secrets> loaded =
        source::Secrets::Load(args.Get("secrets-dir"));
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    secrets = *std::move(loaded);
  }
  factory::LoadedFactory loaded = factory::LoadFactoryFile(file, secrets);
  if (!loaded.ok()) {
    std::fputs(pipeline::JoinDiagnostics(loaded.errors).c_str(), stderr);
    std::fputc('\n', stderr);
    return kExitFailed;
  }
  absl::StatusOr<std::vector<factory::DesiredObject>> desired =
      factory::BuildDesired(loaded.factory, secrets);
  if (!desired.ok()) return Fail(std::string(desired.status().message()));

  kube::LoadOptions load;
  if (args.Has("kubeconfig")) load.kubeconfig_paths = {args.Get("kubeconfig")};
  load.context = args.Get("kube-context");
  absl::StatusOr<kube::ClusterConfig> config = kube::LoadClusterConfig(load);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  absl::StatusOr<std::unique_ptr<kube::Client>> client =
      kube::Client::Create(*config);
  if (!client.ok()) return Fail(std::string(client.status().message()));

  absl::StatusOr<factory::Plan> plan =
      factory::MakePlan(**client, loaded.factory, *desired);
  if (!plan.ok()) return Fail(std::string(plan.status().message()));
  std::fputs(factory::FormatPlan(*plan).c_str(), stdout);
  if (!apply || plan->empty()) {
    return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
  }
  absl::Status applied = factory::ApplyPlan(
      **client, *plan,
      [](const std::string& line) { std::printf("%s\n", line.c_str()); });
  std::fflush(stdout);
  if (!applied.ok()) return Fail(std::string(applied.message()));
  std::printf("applied: %d created, %d updated, %d deleted\n",
              plan->Count(factory::Action::kCreate),
              plan->Count(factory::Action::kUpdate),
              plan->Count(factory::Action::kDelete));
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(factory, "factory",
              "plan or apply a factory file (namespaces, quotas, RBAC...)",
              kiln::cli::RunFactory);
