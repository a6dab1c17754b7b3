// Constants of how the engine runs a `run` task, shared by the key
// (host_platform.cc) and the request (run_exec.cc).
#ifndef KILN_ENGINE_KINDS_RUN_DEFAULTS_H_
#define KILN_ENGINE_KINDS_RUN_DEFAULTS_H_

namespace kiln::kinds {

inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Bumped whenever the engine changes how it runs tasks in a way that can
// change their results (default env, workspace layout).
inline constexpr char kRunnerVersion[] = "runner/v1";

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_RUN_DEFAULTS_H_
