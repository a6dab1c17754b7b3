// `kiln graph FILE`: the tasks of a pipeline in topological order for a
// trigger, as text or as a Graphviz digraph. Skipped tasks say why.
#include <malloc.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cli/args.h"
#include "engine/cli/git_trigger.h"
#include "engine/cli/pipeline_limits.h"
#include "engine/cli/trigger_flags.h"
#include "engine/cli/verb.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/plan.h"
#include "engine/pipeline/validate.h"

namespace kiln::cli {
namespace {

// A double-quoted Graphviz ID.
std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out + "\"";
}

std::string Text(const pipeline::Plan& plan) {
  std::string out;
  bool in_finally = false;
  for (const pipeline::PlannedTask& t : plan.order) {
    if (t.is_finally && !in_finally) {
      out += "finally:\n";
      in_finally = true;
    }
    absl::StrAppend(&out, in_finally ? "  " : "", t.task->name(), " [",
                    pipeline::KindName(*t.task), "]");
    if (!t.task->needs().empty()) {
      absl::StrAppend(&out, " <- ", absl::StrJoin(t.task->needs(), ", "));
    }
    if (t.skipped) absl::StrAppend(&out, " (skipped: ", t.reason, ")");
    out += "\n";
  }
  return out;
}

std::string Dot(const v1::Pipeline& p, const pipeline::Plan& plan) {
  std::string out = absl::StrCat("digraph ", DotQuote(p.name()), " {\n",
                                 "  rankdir=LR;\n  node [shape=box];\n");
  bool any_finally = false;
  for (const pipeline::PlannedTask& t : plan.order) {
    std::string label =
        absl::StrCat(t.task->name(), "\n[", pipeline::KindName(*t.task), "]");
    if (t.skipped) absl::StrAppend(&label, "\nskipped: ", t.reason);
    absl::StrAppend(&out, "  ", DotQuote(t.task->name()),
                    " [label=", DotQuote(label));
    if (t.skipped) out += ", style=dashed, color=grey, fontcolor=grey";
    if (t.is_finally) out += ", shape=octagon";
    out += "];\n";
    any_finally = any_finally || t.is_finally;
  }
  for (const pipeline::PlannedTask& t : plan.order) {
    for (const std::string& need : t.task->needs()) {
      absl::StrAppend(&out, "  ", DotQuote(need), " -> ",
                      DotQuote(t.task->name()), ";\n");
    }
  }
  out += "}\n";
  return out;
}

int RunGraph(const std::vector<std::string>& argv) {
  // The YAML parser runs on its own thread; glibc would reserve a 64 MiB
  // malloc arena for it, which counts against an address-space limit
  // (ulimit -v) although little of it is used. One arena is plenty here.
  mallopt(M_ARENA_MAX, 1);
  Args args(
      "kiln graph FILE [--format text|dot] [--branch B] [--message M] "
      "[--event E] [--revision R] [--param k=v]...\n\nShows the tasks "
      "that would run for a trigger, in order; skipped ones say why.");
  args.Flag("format", "text (default) or dot");
  AddTriggerFlags(&args);
  AddPipelineLimitFlags(&args);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 1) {
    return args.UsageError("graph takes exactly one FILE");
  }
  absl::StatusOr<pipeline::LoadOptions> limits = PipelineLimitsFromFlags(args);
  if (!limits.ok()) {
    return args.UsageError(std::string(limits.status().message()));
  }
  std::string format = args.Get("format", "text");
  if (format != "text" && format != "dot") {
    return args.UsageError("--format must be text or dot");
  }
  absl::StatusOr<v1::Trigger> trigger = TriggerFromFlags(args);
  if (!trigger.ok()) {
    return args.UsageError(std::string(trigger.status().message()));
  }

  absl::StatusOr<GitSource> git =
      GitSource::Resolve(args, args.positionals()[0], &*trigger);
  if (!git.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(git.status().message()).c_str());
    return kExitUsage;
  }
  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineFile(git->pipeline_file(), *limits);
  if (!loaded.ok()) {
    for (const pipeline::Diagnostic& d : loaded.errors) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return kExitFailed;
  }
  absl::StatusOr<pipeline::Plan> plan =
      pipeline::ComputePlan(loaded.pipeline, *trigger);
  if (!plan.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(plan.status().message()).c_str());
    return kExitFailed;
  }
  std::string out = format == "dot" ? Dot(loaded.pipeline, *plan) : Text(*plan);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(graph, "graph", "show a pipeline's tasks for a trigger",
              kiln::cli::RunGraph);
