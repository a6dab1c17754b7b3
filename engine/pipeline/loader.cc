#include "engine/pipeline/loader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/pipeline/decode.h"
#include "engine/pipeline/factory_refs.h"
#include "engine/pipeline/validate.h"
#include "engine/yaml/parse.h"

namespace kiln::pipeline {
namespace {

// Turns an //engine/yaml status ("FILE:LINE:COL: text" or "FILE: text") into
// a diagnostic; file-level problems are placed at 1:1.
Diagnostic StatusToDiagnostic(const absl::Status& status,
                              absl::string_view file) {
  Diagnostic d;
  d.file = std::string(file);
  d.line = 1;
  d.column = 1;
  absl::string_view text = status.message();
  std::string prefix = absl::StrCat(file, ":");
  if (absl::StartsWith(text, prefix)) text.remove_prefix(prefix.size());
  // Optional "LINE:COL:".
  std::vector<absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits(':', 2));
  int line = 0, column = 0;
  if (parts.size() == 3 && absl::SimpleAtoi(parts[0], &line) &&
      absl::SimpleAtoi(parts[1], &column) && line > 0) {
    d.line = line;
    d.column = column;
    text = parts[2];
  }
  d.message = std::string(absl::StripLeadingAsciiWhitespace(text));
  return d;
}

std::string DirName(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

}  // namespace

LoadedPipeline LoadPipelineText(absl::string_view text,
                                absl::string_view filename,
                                const LoadOptions& options) {
  LoadedPipeline out;
  out.file = std::string(filename);
  out.base_dir = DirName(filename);
  auto map = std::make_shared<SourceMap>(out.file);
  out.source_map = map;

  yaml::Limits limits;
  limits.max_bytes = options.max_file_bytes;
  limits.max_depth = options.max_depth;
  limits.max_nodes = options.max_nodes;
  limits.max_alias_nodes = options.max_alias_nodes;
  limits.max_scalar_bytes = options.max_scalar_bytes;
  limits.allow_aliases = true;  // expanded within max_nodes
  absl::StatusOr<yaml::Node> root = yaml::Parse(text, filename, limits);
  if (!root.ok()) {
    out.errors.push_back(StatusToDiagnostic(root.status(), filename));
    return out;
  }
  internal::Decoder decoder(map.get(), &out.errors);
  internal::DecodePipeline(&decoder, *root, &out.pipeline);
  // Relative to base_dir: the file's own name.
  size_t slash = out.file.rfind('/');
  out.pipeline.set_file(
      slash == std::string::npos ? out.file : out.file.substr(slash + 1));
  std::stable_sort(out.errors.begin(), out.errors.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::make_pair(a.line, a.column) <
                            std::make_pair(b.line, b.column);
                   });
  if (out.errors.empty() && options.validate) {
    ExecCapabilities caps;
    caps.images = options.images_supported;
    out.errors =
        ValidatePipeline(out.pipeline, map.get(), caps, &out.validation);
  }
  return out;
}

LoadedPipeline LoadPipelineFile(const std::string& path,
                                const LoadOptions& options) {
  absl::StatusOr<std::string> text =
      yaml::ReadFileCapped(path, options.max_file_bytes);
  if (!text.ok()) {
    LoadedPipeline out;
    out.file = path;
    out.base_dir = DirName(path);
    out.source_map = std::make_shared<SourceMap>(path);
    out.errors.push_back(StatusToDiagnostic(text.status(), path));
    return out;
  }
  LoadedPipeline out = LoadPipelineText(*text, path, options);
  // What a preview's `factory:` names, relative to this file.
  if (out.ok() && options.validate) {
    CheckFactoryRefs(out.pipeline, out.base_dir, out.source_map.get(),
                     &out.errors);
    if (!out.ok()) out.validation.reset();
  }
  return out;
}

}  // namespace kiln::pipeline
