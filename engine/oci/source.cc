#include "engine/oci/source.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kiln::oci {

absl::StatusOr<ResolvedImage> ResolveImage(ImageSource& source,
                                           const std::string& tag_or_digest,
                                           const Platform& platform) {
  absl::StatusOr<FetchedManifest> top = source.GetManifest(tag_or_digest);
  if (!top.ok()) return top.status();
  if (IsIndexMediaType(top->media_type)) {
    absl::StatusOr<Index> index = ParseIndex(top->bytes, top->media_type);
    if (!index.ok()) return index.status();
    absl::StatusOr<Descriptor> chosen = SelectPlatform(*index, platform);
    if (!chosen.ok()) {
      return absl::Status(chosen.status().code(),
                          absl::StrCat(source.Describe(), " ", tag_or_digest,
                                       ": ", chosen.status().message()));
    }
    top = source.GetManifest(chosen->digest);
    if (!top.ok()) return top.status();
    if (!IsManifestMediaType(top->media_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source.Describe(), " ", chosen->digest,
                       ": an index entry for ", platform.ToString(),
                       " is not an image manifest (", top->media_type, ")"));
    }
  }
  absl::StatusOr<Manifest> parsed = ParseManifest(top->bytes, top->media_type);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(source.Describe(), " ", tag_or_digest,
                                     ": ", parsed.status().message()));
  }
  return ResolvedImage{*std::move(top), *std::move(parsed)};
}

}  // namespace kiln::oci
