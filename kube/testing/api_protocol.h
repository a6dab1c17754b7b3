// The API server double's protocol pieces (fake_api_server.h): replies
// and their metav1.Status errors, object metadata helpers, and the
// resource a request path names. Internal to //kube/testing:fake_api_server.
#ifndef KILN_KUBE_TESTING_API_PROTOCOL_H_
#define KILN_KUBE_TESTING_API_PROTOCOL_H_

#include <httplib.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kube/testing/api_resources.h"
#include "nlohmann/json.hpp"

namespace kiln::kube::testing::fake_api {

// ---- Replies. ----
struct Reply {
  int code = 200;
  nlohmann::json body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The Status reason of an HTTP code ("NotFound", "Conflict", ...).
std::string ReasonOf(int code);
// A metav1.Status failure.
nlohmann::json StatusJson(int code, const std::string& reason,
                          const std::string& message,
                          const nlohmann::json& details = nlohmann::json());
// A reply carrying a Status failure ("" reason: ReasonOf(code)).
Reply Err(int code, const std::string& message, const std::string& reason = "",
          const nlohmann::json& details = nlohmann::json());
Reply NotFound(const Resource& res, const std::string& name);
// The optimistic-concurrency conflict of an update.
Reply Conflict(const Resource& res, const std::string& name);
// 422 with one cause per {field, message}.
Reply Invalid(const Resource& res, const std::string& name,
              const std::vector<std::pair<std::string, std::string>>& causes);
// 410 for a resourceVersion older than the oldest one kept.
Reply Expired(int64_t asked, int64_t oldest);

// ---- Object metadata. ----
bool IsDnsLabel(const std::string& s);
bool IsDnsSubdomain(const std::string& s);
std::string NewUid();
// `n` random lowercase alphanumerics (generateName).
std::string RandomSuffix(int n);
// metadata.resourceVersion as a number (0 when absent or not a number).
int64_t RvOf(const nlohmann::json& obj);
// metadata.<field> as a string ("" when absent).
std::string MetaString(const nlohmann::json& obj, const char* field);

// ---- Request targets. ----
struct Target {
  const Resource* res = nullptr;
  std::string ns;    // "" for cluster-scoped or all-namespaces
  std::string name;  // "" for a collection
  std::string sub;   // subresource ("log", "status")
};

// Parses /api/v1/... and /apis/G/V/... resource paths. Returns false when
// the path names no resource (discovery paths, unknown resources).
bool ParseTarget(const std::string& path, Target* t, std::string* why);
bool IsApplyPatch(const std::string& content_type);
// The Kubernetes verb and resource of a request (request_counts()).
std::string RequestKind(const httplib::Request& req);

}  // namespace kiln::kube::testing::fake_api

#endif  // KILN_KUBE_TESTING_API_PROTOCOL_H_
