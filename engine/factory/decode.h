// Internal to the loader: YAML node -> kiln.v1.Factory through the pipeline
// loader's Decoder (positions recorded under field paths, diagnostics
// collected), and the checks that follow a clean decode.
#ifndef KILN_ENGINE_FACTORY_DECODE_H_
#define KILN_ENGINE_FACTORY_DECODE_H_

#include <string>
#include <vector>

#include "engine/pipeline/decoder.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/source/secrets.h"
#include "kiln/v1/factory.pb.h"

namespace kiln::factory::internal {

// The field path of the file's top level (messages read "in factory").
constexpr char kRootPath[] = "factory";

void DecodeFactory(pipeline::internal::Decoder* d, const yaml::Node& node,
                   const std::string& path, v1::Factory* out);

// Names, duplicates, quantities, references and secret names (those only
// when `secrets` is non-null); appends positioned diagnostics (through
// `map`) to `errors`.
void CheckFactory(const v1::Factory& factory, const std::string& path,
                  const pipeline::SourceMap* map,
                  const source::Secrets* secrets,
                  std::vector<pipeline::Diagnostic>* errors);

}  // namespace kiln::factory::internal

#endif  // KILN_ENGINE_FACTORY_DECODE_H_
