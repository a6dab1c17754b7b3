// `kiln approve RUN TASK [--reject] [--comment C]`: decides a task's
// approval gate on a kiln server (the DecideApproval RPC). The token's
// principal must have the approver or admin role, and be listed in the
// task's `approvers:` when it has one.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine/cli/args.h"
#include "engine/cli/client_connect.h"
#include "engine/cli/kiln_client.h"
#include "engine/cli/verb.h"

namespace kiln::cli {
namespace {

int ApproveVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln approve RUN TASK [--reject] [--comment C] [--server ADDR] "
      "[--token-file F]\n\n"
      "Approves TASK of RUN, which waits for approval (it then runs), or "
      "with --reject rejects it (it fails). Needs a token with the approver "
      "or admin role.");
  AddClientFlags(&args);
  args.Bool("reject", "reject instead of approve");
  args.Flag("comment", "recorded with the decision");
  int code;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 2) {
    return args.UsageError("expected RUN TASK");
  }
  auto client = ConnectClient(args);
  if (!client.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(client.status().message()).c_str());
    return kExitFailed;
  }
  const std::string& run_id = args.positionals()[0];
  const std::string& task = args.positionals()[1];
  bool approve = !args.Has("reject");
  absl::StatusOr<v1::ApprovalStatus> decided =
      (*client)->DecideApproval(run_id, task, approve, args.Get("comment"));
  if (!decided.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(decided.status().message()).c_str());
    return kExitFailed;
  }
  std::printf("%s %s of %s (by %s)\n", approve ? "approved" : "rejected",
              task.c_str(), run_id.c_str(), decided->principal().c_str());
  return kExitOk;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(approve, "approve",
              "approve or reject a task waiting for approval on a kiln server",
              kiln::cli::ApproveVerb);
