// Loads a pipeline file (YAML) into a kiln.v1.Pipeline and validates it.
//
// The YAML format mirrors the proto (snake_case field names); see
// examples/hello/pipeline.yaml and loader_test.cc for every form. Shorthands:
//   task `retries`, `timeout`, `resources`   -> Task.hints
//   `env: {NAME: value}`, `labels: {k: v}`    -> repeated EnvVar / Label
//   `inputs: [source]`                        -> [{artifact: source}]
//   `when:` see condition.h for the condition language.
//   `options: {on_failure, timeout, finally_timeout}`.
// Durations are "90s", "10m", "1h30m", "500ms" (or "0"); sizes are bytes or
// "512Mi"/"2G"-style.
//
// Errors: every problem is a Diagnostic "FILE:LINE:COL: message"; the loader
// reports all of them (wrong types, unknown fields with a suggestion, bad
// enums listing the allowed values, bad durations), not only the first. YAML
// syntax and limit violations (file size, depth, node budget, aliases
// expanded within it, duplicate keys, a second document) come from
// //engine/yaml and stop decoding. When the file decodes cleanly the result
// is also validated (validate.h) with positions from the source map.
//
// Thread-safe (no shared state).
#ifndef KILN_ENGINE_PIPELINE_LOADER_H_
#define KILN_ENGINE_PIPELINE_LOADER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/validate.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline {

// The defaults are the bounds for a pipeline that arrives over the network
// (Kiln.SubmitRun, Kiln.ValidatePipeline): 1 MiB, 100,000 nodes. A file the
// user runs locally is trusted more: LocalFile() (64 MiB, 10 M nodes, the
// CLI's --max-pipeline-bytes/--max-pipeline-nodes change them). Both keep
// alias expansion to 100,000 nodes, the depth and the scalar size.
struct LoadOptions {
  size_t max_file_bytes = 1 << 20;  // 1 MiB
  int max_depth = 64;
  size_t max_nodes = 100000;        // after alias expansion
  size_t max_alias_nodes = 100000;  // of those, added by aliases
  size_t max_scalar_bytes = 64 << 10;
  bool validate = true;  // run ValidatePipeline after a clean decode
  // Whether that validation accepts run.image. The loader does not know
  // which executors will run the pipeline (a local engine, a server):
  // by default an image is accepted here, and Engine::Submit validates
  // again with its executors' capabilities (per task).
  bool images_supported = true;
  // A directory keeping decoded pipelines (`kiln run`: <store>/pipelines,
  // made if its parent exists): a file whose exact bytes, name and decoding
  // limits this same kiln build decoded before is not decoded again (the
  // YAML decoding of a 2,000-task file was a third of its no-op run). Nor
  // is it validated again when that validation found nothing at all (no
  // error, no warning) with the same capabilities (images_supported): the
  // entry records it, and the hit carries the proof (`validation`).
  // Otherwise the validation runs again; the `factory:` checks run on every
  // load. Source positions are recomputed from the bytes when a diagnostic
  // needs them. An entry that does not check out is decoded again. "": none.
  std::string decode_cache_dir;

  // Generous bounds for a trusted local file (`kiln run`, `validate`,
  // `graph`): a 10,000-task pipeline (1.4 MB, ~230,000 nodes) loads with
  // room to spare (`kiln validate`: 89 MB peak RSS). Memory stays bounded
  // by the node budget: ~300 bytes a node, so ~3 GB at 10 M nodes.
  static LoadOptions LocalFile() {
    LoadOptions options;
    options.max_file_bytes = kLocalMaxFileBytes;
    options.max_nodes = kLocalMaxNodes;
    return options;
  }
  static constexpr size_t kLocalMaxFileBytes = size_t{64} << 20;
  static constexpr size_t kLocalMaxNodes = 10 * 1000 * 1000;
};

struct LoadedPipeline {
  v1::Pipeline pipeline;
  std::string file;      // as given (the name used in diagnostics)
  std::string base_dir;  // directory of the file ("." for a bare name); the
                         // implicit `source` artifact is this directory
  std::shared_ptr<const SourceMap> source_map;  // never null after a load
  std::vector<Diagnostic> errors;               // empty: success
  // Set when the load validated the pipeline (LoadOptions::validate) and
  // found nothing: hand it to Engine::Submit (RunRequest::validation) with
  // the pipeline, and Submit runs only the capability-dependent checks.
  std::shared_ptr<const Validation> validation;
  // The decoding came from LoadOptions::decode_cache_dir: no YAML was parsed.
  bool from_cache = false;
  bool ok() const { return errors.empty(); }
};

// Reads (at most options.max_file_bytes of a regular file) and loads `path`.
LoadedPipeline LoadPipelineFile(const std::string& path,
                                const LoadOptions& options = LoadOptions());

// Loads YAML text; `filename` names it in diagnostics, base_dir is its
// directory part.
LoadedPipeline LoadPipelineText(absl::string_view yaml,
                                absl::string_view filename,
                                const LoadOptions& options = LoadOptions());

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_LOADER_H_
