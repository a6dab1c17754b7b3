// kiln::kube::ResourceMapper: (apiVersion, kind) -> the resource's API
// paths, from the server's discovery documents (/api/v1,
// /apis/GROUP/VERSION), fetched once per group/version and cached.
// Thread-safe.
#ifndef KILN_KUBE_RESOURCES_H_
#define KILN_KUBE_RESOURCES_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "kube/client.h"

namespace kiln::kube {

struct ApiResource {
  std::string api_version;  // "apps/v1", "v1"
  std::string kind;         // "Deployment"
  std::string plural;       // "deployments"
  bool namespaced = true;

  // "/apis/apps/v1/namespaces/NS/deployments" ("" ns for cluster scope).
  std::string CollectionPath(const std::string& ns) const;
  std::string ObjectPath(const std::string& ns, const std::string& name) const;
};

class ResourceMapper {
 public:
  explicit ResourceMapper(Client* client) : client_(client) {}

  // NotFound (naming the kind and apiVersion) when the server serves no
  // such kind; the client's error when discovery fails.
  absl::StatusOr<ApiResource> Find(const std::string& api_version,
                                   const std::string& kind);

 private:
  Client* const client_;
  Mutex mu_;
  // group/version -> kind -> resource
  std::map<std::string, std::map<std::string, ApiResource>> known_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::kube

#endif  // KILN_KUBE_RESOURCES_H_
