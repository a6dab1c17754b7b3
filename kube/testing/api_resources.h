// The resources the API server double serves (fake_api_server.h): group,
// version, kind, scope, /status, generation, field selectors, short names.
// Internal to //kube/testing:fake_api_server.
#ifndef KILN_KUBE_TESTING_API_RESOURCES_H_
#define KILN_KUBE_TESTING_API_RESOURCES_H_

#include <string>
#include <vector>

namespace kiln::kube::testing::fake_api {

struct Resource {
  std::string group;  // "" = core
  std::string version;
  std::string plural;
  std::string singular;
  std::string kind;
  bool namespaced;
  bool has_status;      // a /status subresource; updates keep the other part
  bool has_generation;  // metadata.generation follows spec changes
  std::vector<std::string> short_names;
  std::vector<std::string> fields;  // field selectors besides metadata.*

  std::string api_version() const {
    return group.empty() ? version : group + "/" + version;
  }
  std::string id() const { return group + "/" + plural; }
  std::string prefix() const {
    return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  }
};

// Every resource served, in discovery order.
const std::vector<Resource>& Resources();
// The resource group/version/plural; nullptr when not served.
const Resource* FindResource(const std::string& group,
                             const std::string& version,
                             const std::string& plural);
// The named API groups the resources belong to, in first-seen order (every
// one at v1).
const std::vector<std::string>& ApiGroups();
const Resource& PodsResource();
const Resource& NamespacesResource();
// The field selectors `r` accepts (metadata.name, metadata.namespace when
// namespaced, then its own).
std::vector<std::string> SupportedFields(const Resource& r);

}  // namespace kiln::kube::testing::fake_api

#endif  // KILN_KUBE_TESTING_API_RESOURCES_H_
