// Promotion by digest (docs/deploy.md, "Promotion"): a deploy that applies
// exactly the images another environment's recorded deployment applied.
// Every container image of the manifests is pinned to the digest that
// deployment recorded for the same repository; an image whose repository
// it did not deploy (or deployed by tag only, or with two digests) is
// refused, never passed through. Thread-safe (no state of its own; the run
// store is).
#ifndef KILN_ENGINE_DEPLOY_PROMOTE_H_
#define KILN_ENGINE_DEPLOY_PROMOTE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/deploy/deployer.h"
#include "engine/deploy/manifests.h"
#include "engine/store/run_store.h"

namespace kiln::deploy {

// The repository of an image reference, as written: without its digest
// ("@...") and its tag (a ':' after the last '/'). "reg:5000/app:v1@sha256:x"
// -> "reg:5000/app". No normalization ("nginx" is not "docker.io/nginx").
std::string RepositoryOf(absl::string_view image);

// The digest of an image reference ("sha256:<64 hex>" or
// "sha512:<128 hex>"), or "" when it has none (or a malformed one).
std::string DigestOf(absl::string_view image);

// Which deployment is promoted.
struct PromotionSource {
  std::string from;  // its environment
  std::string run;   // the run that deployed it
  // `run` is the promoting deploy's own run: its newest deployment of
  // `from` is promoted and must have succeeded. Otherwise the run's newest
  // successful one is.
  bool same_run = false;
  // same_run only: a deployment of `from` that a deploy of this run found
  // still live and did not re-apply (the deploy memo, drift.h); promoted
  // when this run recorded no deployment of `from` itself. 0: none.
  int64_t confirmed = 0;
};

// The recorded deployment `source` names. FailedPrecondition (saying why)
// when there is none, or the one promoted failed; the store's error else.
absl::StatusOr<store::DeploymentRecord> FindPromoted(
    store::RunStore* runs, const PromotionSource& source);

// One image as promoted: the manifests' reference and the pinned one.
struct PinnedImage {
  std::string original;  // as the manifests named it
  std::string pinned;    // REPO@DIGEST as `from` recorded it
};

// Rewrites every image of `manifests` (kContainerLists of PodSpecOf) to
// REPO@DIGEST of `from`'s images (as recorded, e.g. "reg/app@sha256:..").
// FailedPrecondition naming the document and the image when `from` has no
// digest for its repository (none, a tag only, or two different digests).
// On error `manifests` may be partly rewritten. Returns each distinct
// rewrite, sorted.
absl::StatusOr<std::vector<PinnedImage>> PinImages(
    const std::vector<std::string>& from_images, const std::string& from,
    std::vector<Manifest>* manifests);

// FindPromoted, then PinImages with its images; says on `log`, per image,
// "promoted REPO@DIGEST from ENV (deployment N, run R)". Nothing is
// written anywhere: call before any write to the cluster.
absl::Status Promote(store::RunStore* runs, const PromotionSource& source,
                     std::vector<Manifest>* manifests, const LogFn& log);

}  // namespace kiln::deploy

#endif  // KILN_ENGINE_DEPLOY_PROMOTE_H_
