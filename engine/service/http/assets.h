// The dashboard's static files (assets/), compiled into the binary by the
// embed_assets genrule: the server reads nothing from disk to serve them.
//
// Thread-safety: immutable data.
#ifndef KILN_ENGINE_SERVICE_HTTP_ASSETS_H_
#define KILN_ENGINE_SERVICE_HTTP_ASSETS_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace kiln::service::http {

struct EmbeddedAsset {
  const char* name;  // "app.js"
  const unsigned char* data;
  size_t size;
};

// Defined in the generated assets.cc.
extern const EmbeddedAsset kEmbeddedAssets[];
extern const size_t kEmbeddedAssetCount;

// The asset called `name`, or null.
const EmbeddedAsset* FindAsset(absl::string_view name);
// Its Content-Type, from the name's extension.
const char* AssetContentType(absl::string_view name);

}  // namespace kiln::service::http

#endif  // KILN_ENGINE_SERVICE_HTTP_ASSETS_H_
