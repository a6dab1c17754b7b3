// The Table responses (meta.k8s.io/v1) of the API server double, as
// `kubectl get` asks for them: its columns per resource and a row per
// object. Internal to //kube/testing:fake_api_server.
#ifndef KILN_KUBE_TESTING_API_TABLES_H_
#define KILN_KUBE_TESTING_API_TABLES_H_

#include <httplib.h>

#include <string>
#include <vector>

#include "kube/testing/api_resources.h"
#include "nlohmann/json.hpp"

namespace kiln::kube::testing::fake_api {

// The columnDefinitions of `r`'s Table.
nlohmann::json TableColumns(const Resource& r);
// One row of `obj`; `include` is includeObject (None, Metadata, Object).
nlohmann::json TableRow(const Resource& r, const nlohmann::json& obj,
                        const std::string& include);
// A Table of objects, as `kubectl get` asks for.
nlohmann::json ToTable(const Resource& r,
                       const std::vector<nlohmann::json>& objects,
                       const nlohmann::json& list_meta, bool with_columns,
                       const std::string& include);
// Whether the request's Accept asks for a Table.
bool WantsTable(const httplib::Request& req);

}  // namespace kiln::kube::testing::fake_api

#endif  // KILN_KUBE_TESTING_API_TABLES_H_
