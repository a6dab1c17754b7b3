// Helpers shared by the dashboard's handlers (dashboard_*.cc): replies,
// status mapping, JSON of runs and events with secrets redacted.
#ifndef KILN_ENGINE_SERVICE_HTTP_DASHBOARD_INTERNAL_H_
#define KILN_ENGINE_SERVICE_HTTP_DASHBOARD_INTERNAL_H_

#include <string>

#include "absl/status/status.h"
#include "engine/engine.h"
#include "engine/service/http/dashboard_server.h"
#include "httplib.h"
#include "kiln/v1/run.pb.h"
#include "nlohmann/json.hpp"

namespace kiln::service::http {

struct DashboardServer::Caller {
  Principal principal;
  bool by_session = false;
  std::string csrf_token;  // the session's (empty for a bearer token)
};

// The HTTP status for a Status code.
int HttpStatus(absl::StatusCode code);
// {"error": message} with HttpStatus(status.code()).
void SendError(httplib::Response* res, const absl::Status& status);
// `value` as JSON text, with invalid UTF-8 replaced and <, >, & escaped
// (the text is safe even if a browser were to read it as HTML).
std::string DumpJson(const nlohmann::json& value);
void SendJson(httplib::Response* res, const nlohmann::json& value);

// A message as JSON (proto field names, enums by name).
nlohmann::json ProtoJson(const google::protobuf::Message& message);

// The run as a reply may show it: secret params redacted (run_replies.h).
absl::StatusOr<v1::Run> RedactedRun(Engine* engine, const std::string& run_id);
// Redacts secret values from an event's reasons, as RedactSecrets does for
// the run (`raw_run`: the run as the engine returns it).
void RedactEvent(const v1::Pipeline& pipeline, const v1::Run& raw_run,
                 v1::RunEvent* event);

bool RunIsFinal(v1::RunState state);
bool TaskIsOver(v1::TaskState state);
// GET /api/runs's reply for the request's filters (pipeline, state,
// branch, page_size, page_token): {runs: [summary...], next_page_token}.
absl::StatusOr<nlohmann::json> RunsPage(Engine* engine,
                                        const httplib::Request& req);

// GET /api/environments and /api/environments/ENV/deployments's replies
// (dashboard_environments.cc).
absl::StatusOr<nlohmann::json> EnvironmentsReply(Engine* engine);
absl::StatusOr<nlohmann::json> DeploymentsReply(Engine* engine,
                                                const std::string& environment,
                                                const httplib::Request& req);

}  // namespace kiln::service::http

#endif  // KILN_ENGINE_SERVICE_HTTP_DASHBOARD_INTERNAL_H_
