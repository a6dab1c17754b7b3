// Loads a factory file (YAML, the form of kiln.v1.Factory; docs/factories.md)
// and checks it. Every problem is a Diagnostic "FILE:LINE:COL: message", all
// of them reported, not only the first: YAML errors and limits
// (//engine/yaml), unknown fields (with a suggestion), wrong types, names
// that are not DNS-1123, duplicate namespaces or objects (also across
// nested factories), quantities that are not Kubernetes quantities,
// references to undeclared namespaces, roles or service accounts, and
// secret names that `secrets` does not hold (the message names the secret,
// never a value).
//
// Thread-safe (no shared state).
#ifndef KILN_ENGINE_FACTORY_LOADER_H_
#define KILN_ENGINE_FACTORY_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/source/secrets.h"
#include "kiln/v1/factory.pb.h"

namespace kiln::factory {

struct LoadedFactory {
  v1::Factory factory;
  std::string file;
  std::shared_ptr<const pipeline::SourceMap> source_map;  // never null
  std::vector<pipeline::Diagnostic> errors;               // empty: success
  bool ok() const { return errors.empty(); }
};

// A factory file is trusted like a local pipeline file, but small.
constexpr size_t kMaxFactoryFileBytes = 4 << 20;

// `secrets`: the kiln secrets Secret values are taken from; every name a
// factory Secret uses must be among them, unless !check_secrets (a deploy
// applying only a preview template, whose own secrets BuildPreviewObjects
// resolves).
LoadedFactory LoadFactoryText(absl::string_view text,
                              absl::string_view filename,
                              const source::Secrets& secrets,
                              bool check_secrets = true);
LoadedFactory LoadFactoryFile(const std::string& path,
                              const source::Secrets& secrets,
                              bool check_secrets = true);

// The namespace a factory's namespace declaration names: NAME-SUFFIX.
std::string NamespaceName(const v1::Factory& factory,
                          const v1::FactoryNamespace& ns);

}  // namespace kiln::factory

#endif  // KILN_ENGINE_FACTORY_LOADER_H_
