// Builds a kiln::Engine over the local store and the local sandbox
// executor, as the `run` and `serve` verbs use it.
#ifndef KILN_ENGINE_CLI_LOCAL_ENGINE_H_
#define KILN_ENGINE_CLI_LOCAL_ENGINE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/engine.h"

namespace kiln::cli {

// `store_flag`: the --store value ("" for the default). `jobs` <= 0: 2.
// `default_executor`: the --executor value ("" = local-sandbox); an unknown
// name fails, listing the known ones.
absl::StatusOr<std::unique_ptr<Engine>> MakeLocalEngine(
    const std::string& store_flag, int jobs,
    const std::string& default_executor = "");

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_LOCAL_ENGINE_H_
