// The /openapi/v2 document of the API server double: definitions for the
// kinds it serves, detailed for Pod, Secret, ConfigMap and Namespace (the
// kinds kubectl apply validates in the tests), with the patch merge keys
// kubectl's client-side apply reads. Served as JSON or, as kubectl asks, as
// the gnostic OpenAPIv2 protobuf.
#ifndef KILN_KUBE_TESTING_OPENAPI_H_
#define KILN_KUBE_TESTING_OPENAPI_H_

#include <string>

#include "nlohmann/json.hpp"

namespace kiln {
namespace kube {
namespace testing {

// The swagger 2.0 document.
const nlohmann::json& OpenApiV2Json();
// The same document encoded as the gnostic openapi.v2.Document protobuf
// (what client-go's OpenAPISchema() fetches).
const std::string& OpenApiV2Protobuf();
// Encodes a swagger 2.0 document (the subset the double uses: swagger,
// info, definitions with $ref/type/format/description/required/items/
// properties/additionalProperties/x-* extensions) as openapi.v2.Document.
std::string EncodeOpenApiV2(const nlohmann::json& doc);

}  // namespace testing
}  // namespace kube
}  // namespace kiln

#endif  // KILN_KUBE_TESTING_OPENAPI_H_
