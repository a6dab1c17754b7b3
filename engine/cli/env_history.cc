// `kiln env list`, `kiln env history ENV` and `kiln env rollback ENV`: the
// deployment records of the store (docs/deploy.md, "Deployment records"),
// read and rolled back through kiln::Engine. Registered in the `kiln env`
// table (env.h).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/env.h"
#include "engine/cli/verb.h"
#include "engine/engine.h"

namespace kiln::cli {
namespace {

constexpr char kStoreHelp[] =
    "store directory (default $KILN_STORE or ~/.cache/kiln)";

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kiln: %s\n", std::string(s.message()).c_str());
  return kExitFailed;
}

std::string Time(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// "run/task", or "rollback to N".
std::string Origin(const store::DeploymentRecord& r) {
  if (r.rollback_to != 0) return absl::StrCat("rollback to ", r.rollback_to);
  if (r.run_id.empty()) return r.task;
  return absl::StrCat(r.run_id, "/", r.task);
}

std::string Images(const store::DeploymentRecord& r) {
  return r.images.empty() ? "-" : absl::StrJoin(r.images, ",");
}

std::string Outcome(const store::DeploymentRecord& r) {
  return r.succeeded ? "succeeded" : "failed";
}

// The engine over --store, or null with the error printed. A store that
// has no run store yet holds no deployment: *missing says so.
std::unique_ptr<Engine> OpenStore(const Args& args, bool* missing) {
  auto dir = cas::ResolveStoreDir(args.Get("store"));
  if (!dir.ok()) {
    Fail(dir.status());
    return nullptr;
  }
  if (!Engine::HasRunStore(*dir)) {
    *missing = true;
    return nullptr;
  }
  auto engine = Engine::OpenStore(*dir);
  if (!engine.ok()) {
    Fail(engine.status());
    return nullptr;
  }
  return *std::move(engine);
}

int RunList(const std::vector<std::string>& argv) {
  Args args(
      "kiln env list [--store DIR]\n\nEach environment (and namespace) with "
      "a recorded deployment: its latest deployment's id, outcome, time, "
      "run and task, and the images it applied.");
  args.Flag("store", kStoreHelp);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (!args.positionals().empty()) {
    return args.UsageError("env list takes no arguments");
  }
  bool missing = false;
  std::unique_ptr<Engine> engine = OpenStore(args, &missing);
  if (missing) {
    std::fprintf(stderr, "kiln: no deployment recorded in this store\n");
    return kExitOk;
  }
  if (engine == nullptr) return kExitFailed;
  auto latest = engine->LatestDeployments();
  if (!latest.ok()) return Fail(latest.status());
  if (latest->empty()) {
    std::fprintf(stderr, "kiln: no deployment recorded in this store\n");
    return kExitOk;
  }
  std::printf("%-16s %-24s %-6s %-9s %-20s %-40s %s\n", "ENVIRONMENT",
              "NAMESPACE", "LAST", "OUTCOME", "FINISHED", "RUN/TASK", "IMAGES");
  for (const store::DeploymentRecord& r : *latest) {
    std::printf("%-16s %-24s %-6s %-9s %-20s %-40s %s\n", r.environment.c_str(),
                r.namespace_name.c_str(), absl::StrCat(r.id).c_str(),
                Outcome(r).c_str(), Time(r.finished).c_str(), Origin(r).c_str(),
                Images(r).c_str());
  }
  return kExitOk;
}

int RunHistory(const std::vector<std::string>& argv) {
  Args args(
      "kiln env history ENV [--namespace NS] [--limit N] [--store DIR]\n\n"
      "The recorded deployments of environment ENV, newest first: id, "
      "outcome, time, namespace, run and task (or the deployment a rollback "
      "re-applied), manifests digest, images; a failure's reason below it.");
  args.Flag("namespace", "only deployments to this namespace");
  args.Flag("limit", "at most N deployments (default 20, at most 10000)");
  args.Flag("store", kStoreHelp);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 1) {
    return args.UsageError("env history takes exactly one ENV");
  }
  int64_t limit = 20;
  if (absl::Status s = args.IntFlag("limit", 1, 10000, &limit); !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  const std::string& env = args.positionals()[0];
  bool missing = false;
  std::unique_ptr<Engine> engine = OpenStore(args, &missing);
  store::DeploymentFilter filter;
  filter.environment = env;
  filter.namespace_name = args.Get("namespace");
  filter.limit = static_cast<int>(limit);
  std::vector<store::DeploymentRecord> history;
  if (engine != nullptr) {
    auto listed = engine->ListDeployments(filter);
    if (!listed.ok()) return Fail(listed.status());
    history = *std::move(listed);
  } else if (!missing) {
    return kExitFailed;
  }
  if (history.empty()) {
    return Fail(absl::NotFoundError(absl::StrCat(
        "no deployment of environment \"", env, "\"",
        filter.namespace_name.empty()
            ? ""
            : absl::StrCat(" to namespace \"", filter.namespace_name, "\""),
        " is recorded (`kiln env list` shows the recorded environments)")));
  }
  std::printf("%-6s %-9s %-20s %-24s %-40s %-19s %s\n", "ID", "OUTCOME",
              "FINISHED", "NAMESPACE", "RUN/TASK", "MANIFESTS", "IMAGES");
  for (const store::DeploymentRecord& r : history) {
    std::printf("%-6s %-9s %-20s %-24s %-40s %-19s %s\n",
                absl::StrCat(r.id).c_str(), Outcome(r).c_str(),
                Time(r.finished).c_str(), r.namespace_name.c_str(),
                Origin(r).c_str(), r.manifests_digest.substr(0, 19).c_str(),
                Images(r).c_str());
    if (!r.succeeded) std::printf("       reason: %s\n", r.reason.c_str());
  }
  return kExitOk;
}

int RunRollback(const std::vector<std::string>& argv) {
  Args args(
      "kiln env rollback ENV [--to ID] [--namespace NS] [--kubeconfig F] "
      "[--kube-context C] [--force] [--no-wait] [--timeout D] [--store DIR]"
      "\n\nRe-applies the manifests of a recorded deployment of ENV "
      "(default: the newest successful one before the latest deployment, "
      "with other manifests) into its namespace with server-side apply "
      "(field manager kiln), waits for the rollouts, and records the "
      "rollback as a new deployment.");
  args.Flag("to", "the deployment id to roll back to");
  args.Flag("namespace",
            "the environment's namespace (needed when it has several)");
  args.Flag("kubeconfig",
            "kubeconfig file (default $KUBECONFIG, ~/.kube/config, else the "
            "in-cluster service account)");
  args.Flag("kube-context",
            "kubeconfig context (default: the one the deployment recorded)");
  args.Bool("force", "take over fields another field manager owns");
  args.Bool("no-wait", "do not wait for the rollouts");
  args.Flag("timeout", "how long to wait for the rollouts (default 5m)");
  args.Flag("store", kStoreHelp);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 1) {
    return args.UsageError("env rollback takes exactly one ENV");
  }
  deploy::RollbackRequest request;
  request.environment = args.positionals()[0];
  request.namespace_name = args.Get("namespace");
  if (args.Has("to")) {
    if (!absl::SimpleAtoi(args.Get("to"), &request.to) || request.to <= 0) {
      return args.UsageError(
          "--to takes a deployment id (`kiln env history "
          "ENV` lists them)");
    }
  }
  if (args.Has("kubeconfig")) {
    if (args.Get("kubeconfig").empty()) {
      return args.UsageError("--kubeconfig needs a FILE");
    }
    request.kubeconfig_paths = {args.Get("kubeconfig")};
  }
  if (args.Has("kube-context")) request.kube_context = args.Get("kube-context");
  request.force = args.Has("force");
  request.wait = !args.Has("no-wait");
  if (args.Has("timeout")) {
    absl::Duration d;
    if (!absl::ParseDuration(args.Get("timeout"), &d) ||
        d <= absl::ZeroDuration() || d > absl::Hours(6)) {
      return args.UsageError("--timeout: a duration in (0, 6h], e.g. 90s");
    }
    request.timeout = d;
  }
  bool missing = false;
  std::unique_ptr<Engine> engine = OpenStore(args, &missing);
  if (missing) {
    return Fail(absl::NotFoundError(
        absl::StrCat("no deployment of environment \"", request.environment,
                     "\" is recorded (this store has no run store)")));
  }
  if (engine == nullptr) return kExitFailed;
  auto rolled =
      engine->RollbackEnvironment(request, [](const std::string& line) {
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
      });
  if (!rolled.ok()) return Fail(rolled.status());
  std::printf(
      "rolled back environment %s (namespace %s) to deployment %lld: "
      "deployment %lld\n",
      rolled->environment.c_str(), rolled->namespace_name.c_str(),
      static_cast<long long>(rolled->rollback_to),
      static_cast<long long>(rolled->id));
  return kExitOk;
}

}  // namespace
}  // namespace kiln::cli

KILN_ENV_SUBCOMMAND(list, "list",
                    "each environment's latest recorded deployment",
                    kiln::cli::RunList);
KILN_ENV_SUBCOMMAND(history, "history",
                    "an environment's recorded deployments, newest first",
                    kiln::cli::RunHistory);
KILN_ENV_SUBCOMMAND(rollback, "rollback",
                    "re-apply an earlier deployment of an environment",
                    kiln::cli::RunRollback);
