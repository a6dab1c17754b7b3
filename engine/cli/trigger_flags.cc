#include "engine/cli/trigger_flags.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kiln::cli {

void AddTriggerFlags(Args* args) {
  args->Flag("branch", "the branch that triggered the run");
  args->Flag("message", "the commit message");
  args->Flag("event",
             "push, pull_request, pull_request_closed, branch_deleted, tag or "
             "manual (default: push)");
  args->Flag("revision", "the commit revision");
  args->Repeated("param", "a pipeline parameter, k=v");
  args->Flag("rev",
             "run this committed git revision (its exact tree) instead of "
             "the work tree");
  args->Bool("no-git", "do not fill the trigger from git");
}

absl::StatusOr<v1::Trigger> TriggerFromFlags(const Args& args) {
  v1::Trigger t;
  t.set_branch(args.Get("branch"));
  t.set_commit_message(args.Get("message"));
  t.set_revision(args.Get("revision"));
  std::string event = absl::AsciiStrToLower(args.Get("event", "push"));
  if (event == "push") {
    t.set_event(v1::PUSH);
  } else if (event == "pull_request" || event == "pr") {
    t.set_event(v1::PULL_REQUEST);
  } else if (event == "tag") {
    t.set_event(v1::TAG);
  } else if (event == "manual") {
    t.set_event(v1::MANUAL);
  } else if (event == "pull_request_closed") {
    t.set_event(v1::PULL_REQUEST_CLOSED);
  } else if (event == "branch_deleted") {
    t.set_event(v1::BRANCH_DELETED);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --event '", event,
                     "' (push, pull_request, pull_request_closed, "
                     "branch_deleted, tag, manual)"));
  }
  for (const std::string& p : args.GetAll("param")) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--param '", p, "' is not of the form k=v"));
    }
    (*t.mutable_params())[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return t;
}

}  // namespace kiln::cli
