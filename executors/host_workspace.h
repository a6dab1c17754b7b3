// The location-independent request mode (executor.h) for executors that run
// commands on this host: a fresh workspace directory under a work root,
// inputs materialized and outputs captured through an ArtifactAccess, the
// workspace removed afterwards. Shared by the local sandbox and the fake.
//
// The workspace is hostile once anything ran in it: it is created,
// materialized into, captured from and removed through its directory fd,
// and its removal never follows a symlink.
#ifndef KILN_EXECUTORS_HOST_WORKSPACE_H_
#define KILN_EXECUTORS_HOST_WORKSPACE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "executors/artifact_access.h"
#include "executors/executor.h"
#include "kiln/v1/exec.pb.h"

namespace kiln {

// `given` (what the engine passed with a request) completed with
// `fallback` (what the executor was constructed with): each field of
// `given` wins when set.
HostWorkspaceOptions MergeHostWorkspace(const HostWorkspaceOptions& given,
                                        const HostWorkspaceOptions& fallback);

// InvalidArgument for a request mixing the modes (a workspace together
// with inputs, outputs or a report) or naming an image when the executor
// runs none (`images_supported` false).
absl::Status CheckRequestMode(const v1::ExecRequest& request,
                              bool images_supported = false);

// An Execution that ran nothing: Wait() returns `result` (e.g. an image or
// an input that could not be prepared), Cancel() does nothing.
std::unique_ptr<Execution> FinishedExecution(v1::ExecResult result);

// Starts `request` (location-independent: no workspace) in a fresh host
// workspace: creates it, materializes request.inputs in order, then calls
// `start` with a copy of the request whose `workspace` is the new
// directory's absolute path (and without inputs/outputs/report). The
// returned Execution captures the outputs after a successful exit and
// removes the workspace after Wait() (unless keep_workspace); failing
// inputs give an Execution whose Wait() is INPUTS_FAILED. Errors as
// Executor::Start (InvalidArgument without work_root or artifacts).
absl::StatusOr<std::unique_ptr<Execution>> StartInHostWorkspace(
    const v1::ExecRequest& request, const HostWorkspaceOptions& options,
    const std::function<absl::StatusOr<std::unique_ptr<Execution>>(
        const v1::ExecRequest&)>& start);

}  // namespace kiln

#endif  // KILN_EXECUTORS_HOST_WORKSPACE_H_
