#include "engine/factory/loader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/factory/decode.h"
#include "engine/yaml/parse.h"

namespace kiln::factory {
namespace {

// An //engine/yaml status ("FILE:LINE:COL: text" or "FILE: text") as a
// diagnostic; file-level problems are placed at 1:1.
pipeline::Diagnostic StatusToDiagnostic(const absl::Status& status,
                                        absl::string_view file) {
  pipeline::Diagnostic d;
  d.file = std::string(file);
  d.line = 1;
  d.column = 1;
  absl::string_view text = status.message();
  absl::ConsumePrefix(&text, absl::StrCat(file, ":"));
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

void SortByPosition(std::vector<pipeline::Diagnostic>* errors) {
  std::stable_sort(
      errors->begin(), errors->end(),
      [](const pipeline::Diagnostic& a, const pipeline::Diagnostic& b) {
        return std::make_pair(a.line, a.column) <
               std::make_pair(b.line, b.column);
      });
}

}  // namespace

std::string NamespaceName(const v1::Factory& factory,
                          const v1::FactoryNamespace& ns) {
  return absl::StrCat(factory.name(), "-", ns.suffix());
}

LoadedFactory LoadFactoryText(absl::string_view text,
                              absl::string_view filename,
                              const source::Secrets& secrets,
                              bool check_secrets) {
  LoadedFactory out;
  out.file = std::string(filename);
  auto map = std::make_shared<pipeline::SourceMap>(out.file);
  out.source_map = map;
  yaml::Limits limits;
  limits.max_bytes = kMaxFactoryFileBytes;
  limits.max_nodes = 200000;
  limits.max_alias_nodes = 10000;
  limits.max_scalar_bytes = 64 << 10;
  absl::StatusOr<yaml::Node> root = yaml::Parse(text, filename, limits);
  if (!root.ok()) {
    out.errors.push_back(StatusToDiagnostic(root.status(), filename));
    return out;
  }
  pipeline::internal::Decoder decoder(map.get(), &out.errors);
  internal::DecodeFactory(&decoder, *root, internal::kRootPath, &out.factory);
  if (out.errors.empty()) {
    internal::CheckFactory(out.factory, internal::kRootPath, map.get(),
                           check_secrets ? &secrets : nullptr, &out.errors);
  }
  SortByPosition(&out.errors);
  return out;
}

LoadedFactory LoadFactoryFile(const std::string& path,
                              const source::Secrets& secrets,
                              bool check_secrets) {
  absl::StatusOr<std::string> text =
      yaml::ReadFileCapped(path, kMaxFactoryFileBytes);
  if (!text.ok()) {
    LoadedFactory out;
    out.file = path;
    out.source_map = std::make_shared<pipeline::SourceMap>(path);
    out.errors.push_back(StatusToDiagnostic(text.status(), path));
    return out;
  }
  return LoadFactoryText(*text, path, secrets, check_secrets);
}

}  // namespace kiln::factory
