#include "absl/strings/match.h"
#include "engine/service/http/assets.h"

namespace kiln::service::http {

const EmbeddedAsset* FindAsset(absl::string_view name) {
  for (size_t i = 0; i < kEmbeddedAssetCount; ++i) {
    if (name == kEmbeddedAssets[i].name) return &kEmbeddedAssets[i];
  }
  return nullptr;
}

const char* AssetContentType(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace kiln::service::http
