// Loader bounds from the command line (pipeline_limits.h).
#include "engine/cli/pipeline_limits.h"

#include "absl/strings/str_cat.h"

namespace kiln::cli {
namespace {

constexpr int64_t kMaxBytesCeiling = int64_t{1} << 30;  // 1 GiB
constexpr int64_t kMaxNodesCeiling = 100 * 1000 * 1000;

}  // namespace

void AddPipelineLimitFlags(Args* args) {
  args->Flag("max-pipeline-bytes",
             absl::StrCat("largest pipeline file read (default ",
                          pipeline::LoadOptions::kLocalMaxFileBytes,
                          " = 64 MiB; at most 1 GiB)"));
  args->Flag("max-pipeline-nodes",
             absl::StrCat("most YAML nodes in the pipeline file (default ",
                          pipeline::LoadOptions::kLocalMaxNodes,
                          "; at most 100000000)"));
}

absl::StatusOr<pipeline::LoadOptions> PipelineLimitsFromFlags(
    const Args& args) {
  pipeline::LoadOptions options = pipeline::LoadOptions::LocalFile();
  int64_t bytes = static_cast<int64_t>(options.max_file_bytes);
  int64_t nodes = static_cast<int64_t>(options.max_nodes);
  if (absl::Status s =
          args.IntFlag("max-pipeline-bytes", 1, kMaxBytesCeiling, &bytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          args.IntFlag("max-pipeline-nodes", 1, kMaxNodesCeiling, &nodes);
      !s.ok()) {
    return s;
  }
  options.max_file_bytes = static_cast<size_t>(bytes);
  options.max_nodes = static_cast<size_t>(nodes);
  return options;
}

}  // namespace kiln::cli
