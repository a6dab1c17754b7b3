// A preview environment's factory template (pipeline Environment.factory,
// docs/factories.md): the `previews` objects of the named factory applied
// into a preview namespace with server-side apply (field manager "kiln"),
// built by the same code as `kiln factory apply` (engine/factory/desired.h)
// so both produce identical objects. Called by each deploy that creates or
// refreshes the namespace, before its manifests.
//
// The factory file is loaded and checked in full (engine/factory/loader.h)
// from inside the pipeline's directory: a path that resolves outside it
// (a symlink out of the tree) is refused. Secret values come from the
// given kiln secrets and appear in no message. Thread-compatible.
#ifndef KILN_ENGINE_ENVIRONMENTS_PREVIEW_TEMPLATE_H_
#define KILN_ENGINE_ENVIRONMENTS_PREVIEW_TEMPLATE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "engine/source/secrets.h"
#include "kube/client.h"

namespace kiln::environments {

// The field manager of the template's objects.
inline constexpr char kPreviewFieldManager[] = "kiln";

// Applies the template `factory_ref` ("PATH#NAME", PATH relative to
// `pipeline_dir`) names into `namespace_name`, which must exist: the
// template's labels merged into the namespace, then every object applied,
// then the factory's objects in the namespace that the template no longer
// declares (found by the factory's labels) deleted.
// FailedPrecondition (with the factory file's FILE:LINE:COL diagnostics)
// when the file does not load or the factory has no previews; the API's
// error naming the object otherwise. `say` gets one summary line.
absl::Status ApplyPreviewTemplate(
    kube::Client& client, const std::string& factory_ref,
    const std::string& pipeline_dir, const std::string& namespace_name,
    const source::Secrets& secrets,
    const std::function<void(const std::string&)>& say);

}  // namespace kiln::environments

#endif  // KILN_ENGINE_ENVIRONMENTS_PREVIEW_TEMPLATE_H_
