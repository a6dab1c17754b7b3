// `kiln env destroy ENV FILE [--branch B]` and `kiln env gc FILE [--dry-run]`
// against the cluster of --kubeconfig/--kube-context; the `kiln env`
// dispatcher over the subcommand table (env.h).
//
// destroy resolves ENV among FILE's declared environments for branch B (as
// a deploy of that branch would) and deletes its namespace, waiting until it
// is gone; a permanent environment is refused (exit 1) before any request.
// gc destroys the pipeline's expired previews. Both print one line per
// namespace; every deletion passes the permanent guard
// (engine/environments/guard.h).
#include "engine/cli/env.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/cli/args.h"
#include "engine/cli/pipeline_limits.h"
#include "engine/cli/verb.h"
#include "engine/environments/lifecycle.h"
#include "engine/pipeline/loader.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"

namespace kiln::cli {
namespace {

std::vector<EnvSubcommand>& Table() {
  static auto* subs = new std::vector<EnvSubcommand>();
  return *subs;
}

void AddClusterFlags(Args* args) {
  args->Flag("kubeconfig",
             "kubeconfig file (default $KUBECONFIG, ~/.kube/config, else the "
             "in-cluster service account)");
  args->Flag("kube-context",
             "kubeconfig context (default: the environment's, else "
             "current-context)");
  args->Flag("timeout", "how long to wait for a namespace to go (default 5m)");
}

// The pipeline FILE (positional 0), loaded and validated; errors printed.
bool LoadPipeline(const Args& args, v1::Pipeline* out) {
  absl::StatusOr<pipeline::LoadOptions> limits = PipelineLimitsFromFlags(args);
  if (!limits.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(limits.status().message()).c_str());
    return false;
  }
  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineFile(args.positionals().back(), *limits);
  if (!loaded.ok()) {
    for (const pipeline::Diagnostic& d : loaded.errors) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return false;
  }
  *out = std::move(loaded.pipeline);
  return true;
}

absl::StatusOr<std::unique_ptr<kube::Client>> Connect(
    const Args& args, const std::string& env_context) {
  kube::LoadOptions load;
  if (args.Has("kubeconfig")) {
    if (args.Get("kubeconfig").empty()) {
      return absl::InvalidArgumentError("--kubeconfig needs a FILE");
    }
    load.kubeconfig_paths = {args.Get("kubeconfig")};
  }
  load.context =
      args.Has("kube-context") ? args.Get("kube-context") : env_context;
  absl::StatusOr<kube::ClusterConfig> config = kube::LoadClusterConfig(load);
  if (!config.ok()) return config.status();
  return kube::Client::Create(*config);
}

bool ReadOptions(const Args& args, environments::LifecycleOptions* options) {
  if (!args.Has("timeout")) return true;
  absl::Duration d;
  if (!absl::ParseDuration(args.Get("timeout"), &d) ||
      d <= absl::ZeroDuration() || d > absl::Hours(1)) {
    std::fprintf(stderr, "kiln: --timeout: a duration in (0, 1h], e.g. 90s\n");
    return false;
  }
  options->destroy_timeout = d;
  return true;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kiln: %s\n", std::string(s.message()).c_str());
  return kExitFailed;
}

int RunDestroy(const std::vector<std::string>& argv) {
  Args args(
      "kiln env destroy ENV FILE [--branch B] [--kubeconfig F] "
      "[--kube-context C] [--timeout D]\n\nDeletes preview environment ENV "
      "of pipeline FILE for branch B and waits until its namespace is gone. "
      "Permanent environments are refused.");
  args.Flag("branch", "the branch whose preview to destroy");
  AddClusterFlags(&args);
  AddPipelineLimitFlags(&args);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 2) {
    return args.UsageError("env destroy takes ENV and FILE");
  }
  environments::LifecycleOptions options;
  if (!ReadOptions(args, &options)) return kExitUsage;
  v1::Pipeline p;
  if (!LoadPipeline(args, &p)) return kExitFailed;
  pipeline::SubstitutionContext context;
  context.trigger.set_branch(args.Get("branch"));
  for (const v1::Param& param : p.params()) {
    if (param.has_default_()) context.params[param.name()] = param.default_();
  }
  absl::StatusOr<environments::Target> target =
      environments::ResolveEnvironment(p, args.positionals()[0], context);
  if (!target.ok()) return Fail(target.status());
  if (target->permanent()) {
    return Fail(absl::PermissionDeniedError(absl::StrCat(
        "refusing to destroy permanent environment '", target->environment,
        "' (namespace '", target->namespace_name,
        "'): permanent environments are never deleted")));
  }
  if (!args.Has("branch")) {
    return args.UsageError("env destroy of a preview needs --branch");
  }
  auto client = Connect(args, target->context);
  if (!client.ok()) return Fail(client.status());
  environments::PermanentGuard guard(p);
  absl::StatusOr<environments::DestroyResult> r =
      environments::Destroy(**client, *target, guard, options);
  if (!r.ok()) return Fail(r.status());
  std::printf(
      "%s %s (environment %s, branch %s)\n",
      *r == environments::DestroyResult::kDeleted ? "destroyed" : "absent",
      target->namespace_name.c_str(), target->environment.c_str(),
      target->branch.c_str());
  return kExitOk;
}

int RunGc(const std::vector<std::string>& argv) {
  Args args(
      "kiln env gc FILE [--dry-run] [--kubeconfig F] [--kube-context C] "
      "[--timeout D]\n\nDestroys the expired preview environments of "
      "pipeline FILE (their kiln.dev/expires-at is past); keeps everything "
      "else. One line per namespace: deleted|would-delete|kept|failed.");
  args.Bool("dry-run", "only say what would be deleted");
  AddClusterFlags(&args);
  AddPipelineLimitFlags(&args);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 1) {
    return args.UsageError("env gc takes exactly one FILE");
  }
  environments::LifecycleOptions options;
  if (!ReadOptions(args, &options)) return kExitUsage;
  v1::Pipeline p;
  if (!LoadPipeline(args, &p)) return kExitFailed;
  if (p.environments().empty()) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("pipeline '", p.name(), "' declares no environments")));
  }
  auto client = Connect(args, "");
  if (!client.ok()) return Fail(client.status());
  environments::PermanentGuard guard(p);
  auto entries =
      environments::Gc(**client, p.name(), guard, args.Has("dry-run"), options);
  if (!entries.ok()) return Fail(entries.status());
  bool failed = false;
  for (const environments::GcEntry& e : *entries) {
    const char* action = "kept";
    switch (e.action) {
      case environments::GcEntry::kDeleted:
        action = "deleted";
        break;
      case environments::GcEntry::kWouldDelete:
        action = "would-delete";
        break;
      case environments::GcEntry::kFailed:
        action = "failed";
        failed = true;
        break;
      case environments::GcEntry::kKept:
        break;
    }
    std::printf("%s %s: %s\n", action, e.namespace_name.c_str(),
                e.reason.c_str());
  }
  return failed ? kExitFailed : kExitOk;
}

int RunEnv(const std::vector<std::string>& args) {
  std::vector<EnvSubcommand> subs = Table();
  std::sort(subs.begin(), subs.end(),
            [](const EnvSubcommand& a, const EnvSubcommand& b) {
              return std::string(a.name) < b.name;
            });
  auto usage = [&subs](FILE* out) {
    std::fprintf(out, "usage: kiln env SUBCOMMAND ...\n\n");
    for (const EnvSubcommand& s : subs) {
      std::fprintf(out, "  %-10s %s\n", s.name, s.summary);
    }
  };
  if (args.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    usage(stdout);
    return kExitOk;
  }
  for (const EnvSubcommand& s : subs) {
    if (args[0] == s.name) {
      return s.run(std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  std::fprintf(stderr, "kiln: unknown env subcommand '%s'\n", args[0].c_str());
  usage(stderr);
  return kExitUsage;
}

}  // namespace

bool RegisterEnvSubcommand(const EnvSubcommand& sub) {
  Table().push_back(sub);
  return true;
}

}  // namespace kiln::cli

KILN_CLI_VERB(
    env, "env",
    "environments: list, history, rollback, destroy, gc (kiln env --help)",
    kiln::cli::RunEnv);
KILN_ENV_SUBCOMMAND(destroy, "destroy",
                    "delete a preview environment and wait until it is gone",
                    kiln::cli::RunDestroy);
KILN_ENV_SUBCOMMAND(gc, "gc", "destroy expired preview environments",
                    kiln::cli::RunGc);
