// What the API server double does per kind on create and update (the
// real server's defaulting and validation, narrowed to what the double
// models): pod defaults, pod validation and spec immutability, Secret
// stringData. Internal to //kube/testing:fake_api_server.
#ifndef KILN_KUBE_TESTING_OBJECT_RULES_H_
#define KILN_KUBE_TESTING_OBJECT_RULES_H_

#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace kiln::kube::testing::fake_api {

// Fills the defaults the real server sets on a new pod (restartPolicy,
// dnsPolicy, terminationMessagePath, ..., status Pending and its qosClass).
void DefaultPod(nlohmann::json& pod);
// What makes a pod invalid: {field, message} causes (empty: valid).
std::vector<std::pair<std::string, std::string>> ValidatePod(
    const nlohmann::json& pod);
// The pod spec with the fields an update may change blanked out.
nlohmann::json MutablePodSpec(nlohmann::json spec);
// A Secret with stringData merged into data (base64) and type defaulted;
// `*error` set when stringData is malformed.
nlohmann::json SecretWithStringData(nlohmann::json obj, std::string* error);

}  // namespace kiln::kube::testing::fake_api

#endif  // KILN_KUBE_TESTING_OBJECT_RULES_H_
