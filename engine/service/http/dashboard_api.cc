// The dashboard's JSON API: the caller, runs (filtered, paged), one run with
// its tasks and graph, a task's cache explanation, and the actions cancel
// and retry. Every reply is JSON with secrets redacted.
#include <algorithm>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/service/http/dashboard_internal.h"
#include "engine/service/run_replies.h"
#include "google/protobuf/util/json_util.h"
#include "proto/json.h"

namespace kiln::service::http {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 200;
// With a branch filter, store pages scanned for one reply at most.
constexpr int kMaxScannedPages = 20;

absl::StatusOr<v1::RunState> ParseRunState(std::string text) {
  text = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(text, "RUN_")) text = absl::StrCat("RUN_", text);
  v1::RunState state;
  if (!v1::RunState_Parse(text, &state) || state == v1::RUN_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown run state \"", text,
                     "\" (queued, running, succeeded, failed, cancelled, "
                     "timed_out)"));
  }
  return state;
}

// A run for the runs list: redacted, its tasks counted by state, then
// dropped.
nlohmann::json RunSummary(Engine* engine, v1::Run run) {
  absl::StatusOr<v1::Pipeline> pipeline = engine->GetPipeline(run.id());
  if (pipeline.ok()) {
    RedactSecrets(*pipeline, &run);
  } else {
    for (auto& [key, value] : *run.mutable_trigger()->mutable_params()) {
      value = kRedacted;  // cannot tell which are secret: show none
    }
  }
  nlohmann::json counts = nlohmann::json::object();
  for (const v1::TaskStatus& task : run.tasks()) {
    std::string state = v1::TaskState_Name(task.state());
    counts[state] = counts.value(state, 0) + 1;
  }
  int total = run.tasks_size();
  SummarizeRun(&run);
  nlohmann::json item = ProtoJson(run);
  item["task_counts"] = std::move(counts);
  item["task_total"] = total;
  return item;
}

}  // namespace

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string DumpJson(const nlohmann::json& value) {
  std::string text =
      value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // <, > and & occur only inside strings: \u escapes mean the same.
  return absl::StrReplaceAll(
      text, {{"<", "\\u003c"}, {">", "\\u003e"}, {"&", "\\u0026"}});
}

void SendJson(httplib::Response* res, const nlohmann::json& value) {
  res->set_content(DumpJson(value), "application/json; charset=utf-8");
}

void SendError(httplib::Response* res, const absl::Status& status) {
  res->status = HttpStatus(status.code());
  SendJson(res,
           nlohmann::json{{"error", std::string(status.message())},
                          {"code", absl::StatusCodeToString(status.code())}});
}

nlohmann::json ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  if (!proto::AppendJson(message, options, &text).ok()) {
    return nlohmann::json::object();
  }
  return nlohmann::json::parse(text, nullptr, false);
}

absl::StatusOr<v1::Run> RedactedRun(Engine* engine, const std::string& id) {
  absl::StatusOr<v1::Run> run = engine->GetRun(id);
  if (!run.ok()) return run.status();
  absl::StatusOr<v1::Pipeline> pipeline = engine->GetPipeline(id);
  if (!pipeline.ok()) return pipeline.status();
  RedactSecrets(*pipeline, &*run);
  return run;
}

void RedactEvent(const v1::Pipeline& pipeline, const v1::Run& raw_run,
                 v1::RunEvent* event) {
  if (!event->has_task_state() && !event->has_run_state()) return;
  v1::Run probe;
  *probe.mutable_trigger() = raw_run.trigger();
  v1::TaskStatus* task = probe.add_tasks();
  task->set_reason(event->has_task_state() ? event->task_state().reason()
                                           : event->run_state().reason());
  RedactSecrets(pipeline, &probe);
  if (event->has_task_state()) {
    event->mutable_task_state()->set_reason(probe.tasks(0).reason());
  } else {
    event->mutable_run_state()->set_reason(probe.tasks(0).reason());
  }
}

bool RunIsFinal(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED || state == v1::RUN_TIMED_OUT;
}

absl::StatusOr<nlohmann::json> RunsPage(Engine* engine,
                                        const httplib::Request& req) {
  store::RunFilter filter;
  filter.pipeline_name = req.get_param_value("pipeline");
  if (std::string state = req.get_param_value("state"); !state.empty()) {
    absl::StatusOr<v1::RunState> parsed = ParseRunState(state);
    if (!parsed.ok()) return parsed.status();
    filter.state = *parsed;
  }
  int page_size = kDefaultPageSize;
  if (req.has_param("page_size") &&
      (!absl::SimpleAtoi(req.get_param_value("page_size"), &page_size) ||
       page_size < 1 || page_size > kMaxPageSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be 1..", kMaxPageSize));
  }
  std::string branch = req.get_param_value("branch");
  std::string token = req.get_param_value("page_token");
  nlohmann::json runs = nlohmann::json::array();
  // Each store page asks only for what is still missing, so a reply is
  // never over page_size and the next token loses nothing.
  for (int scanned = 0; scanned < kMaxScannedPages; ++scanned) {
    int want = page_size - static_cast<int>(runs.size());
    absl::StatusOr<store::RunPage> page = engine->ListRuns(filter, want, token);
    if (!page.ok()) return page.status();
    for (v1::Run& run : page->runs) {
      if (!branch.empty() && run.trigger().branch() != branch) continue;
      runs.push_back(RunSummary(engine, std::move(run)));
    }
    token = page->next_page_token;
    if (token.empty() || static_cast<int>(runs.size()) >= page_size) break;
  }
  return nlohmann::json{{"runs", std::move(runs)}, {"next_page_token", token}};
}

bool TaskIsOver(v1::TaskState state) {
  return state != v1::TASK_STATE_UNSPECIFIED && state != v1::TASK_PENDING &&
         state != v1::TASK_RUNNING && state != v1::TASK_WAITING_FOR_APPROVAL;
}

void DashboardServer::Api() {
  httplib::Server& svr = *server_;

  svr.Get("/api/session", [this](const httplib::Request& req,
                                 httplib::Response& res) {
    Caller caller;
    if (!Authenticate(req, &res, "ListRuns", false, &caller)) return;
    SendJson(&res,
             nlohmann::json{
                 {"name", caller.principal.name},
                 {"role", RoleName(caller.principal.role)},
                 {"can_act", RoleMayCall(caller.principal.role, "CancelRun")},
                 {"can_approve",
                  RoleMayCall(caller.principal.role, "DecideApproval")},
                 {"csrf_token", caller.csrf_token}});
  });

  svr.Get("/api/runs",
          [this](const httplib::Request& req, httplib::Response& res) {
            Caller caller;
            if (!Authenticate(req, &res, "ListRuns", false, &caller)) return;
            absl::StatusOr<nlohmann::json> page = RunsPage(engine_, req);
            if (!page.ok()) return SendError(&res, page.status());
            SendJson(&res, *page);
          });

  svr.Get(R"(/api/runs/([^/]+))", [this](const httplib::Request& req,
                                         httplib::Response& res) {
    Caller caller;
    if (!Authenticate(req, &res, "GetRun", false, &caller)) return;
    const std::string id = req.matches[1];
    // The sequence first: events after it are replayed onto this state.
    absl::StatusOr<uint64_t> sequence = engine_->LastSequence(id);
    if (!sequence.ok()) return SendError(&res, sequence.status());
    absl::StatusOr<v1::Run> run = RedactedRun(engine_, id);
    if (!run.ok()) return SendError(&res, run.status());
    absl::StatusOr<v1::Pipeline> pipeline = engine_->GetPipeline(id);
    if (!pipeline.ok()) return SendError(&res, pipeline.status());
    nlohmann::json graph = nlohmann::json::array();
    for (const auto* list : {&pipeline->tasks(), &pipeline->finally()}) {
      for (const v1::Task& task : *list) {
        nlohmann::json needs = nlohmann::json::array();
        for (const std::string& need : task.needs()) needs.push_back(need);
        graph.push_back(
            nlohmann::json{{"name", task.name()},
                           {"needs", std::move(needs)},
                           {"finally", list == &pipeline->finally()}});
      }
    }
    SendJson(&res, nlohmann::json{{"run", ProtoJson(*run)},
                                  {"graph", std::move(graph)},
                                  {"last_sequence", *sequence}});
  });

  svr.Get(R"(/api/runs/([^/]+)/tasks/([^/]+)/explain)",
          [this](const httplib::Request& req, httplib::Response& res) {
            Caller caller;
            if (!Authenticate(req, &res, "GetRun", false, &caller)) return;
            absl::StatusOr<CacheExplanation> why =
                engine_->ExplainCacheKey(req.matches[1], req.matches[2]);
            if (!why.ok()) return SendError(&res, why.status());
            static const char* const kVerdicts[] = {
                "no_key",       "hit",      "no_earlier_run",
                "not_recorded", "same_key", "changed"};
            auto components = [](const std::vector<store::KeyComponent>& in) {
              nlohmann::json out = nlohmann::json::array();
              for (const store::KeyComponent& c : in) {
                out.push_back({{"name", c.name}, {"digest", c.value_digest}});
              }
              return out;
            };
            nlohmann::json changes = nlohmann::json::array();
            for (const store::ComponentChange& c : why->changes) {
              const char* kind =
                  c.kind == store::ComponentChange::Kind::kAdded ? "added"
                  : c.kind == store::ComponentChange::Kind::kRemoved
                      ? "removed"
                      : "changed";
              changes.push_back({{"kind", kind},
                                 {"name", c.name},
                                 {"old", c.old_digest},
                                 {"new", c.new_digest}});
            }
            SendJson(&res,
                     nlohmann::json{
                         {"verdict", kVerdicts[static_cast<int>(why->verdict)]},
                         {"key", why->key},
                         {"recorded_by_run", why->recorded_by_run},
                         {"inputs", components(why->inputs)},
                         {"previous_run", why->previous_run},
                         {"previous_key", why->previous_key},
                         {"changes", std::move(changes)},
                         {"host_tools_untracked", why->host_tools_untracked}});
          });

  svr.Post(R"(/api/runs/([^/]+)/cancel)", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
    Caller caller;
    if (!Authenticate(req, &res, "CancelRun", true, &caller)) return;
    absl::Status cancelled = engine_->Cancel(
        req.matches[1], absl::StrCat("cancelled from the dashboard by ",
                                     caller.principal.name));
    if (!cancelled.ok()) return SendError(&res, cancelled);
    SendJson(&res, nlohmann::json{{"ok", true}});
  });

  // Approval gates: {"comment": "..."} optional; the decision is the
  // session's principal's (Engine::DecideApproval checks `approvers:`).
  svr.Post(
      R"(/api/runs/([^/]+)/tasks/([^/]+)/(approve|reject))",
      [this](const httplib::Request& req, httplib::Response& res) {
        Caller caller;
        if (!Authenticate(req, &res, "DecideApproval", true, &caller)) {
          return;
        }
        std::string comment;
        if (!req.body.empty()) {
          nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
          if (body.is_discarded() || !body.is_object() ||
              (body.contains("comment") && !body["comment"].is_string())) {
            return SendError(&res, absl::InvalidArgumentError(
                                       "the body must be a JSON object "
                                       "{\"comment\": \"...\"}"));
          }
          if (body.contains("comment")) {
            comment = body["comment"].get<std::string>();
          }
        }
        absl::StatusOr<v1::ApprovalStatus> decided = engine_->DecideApproval(
            req.matches[1], req.matches[2], req.matches[3] == "approve",
            caller.principal.name, comment);
        if (!decided.ok()) return SendError(&res, decided.status());
        SendJson(&res, nlohmann::json{{"ok", true}});
      });

  svr.Post(R"(/api/runs/([^/]+)/retry)",
           [this](const httplib::Request& req, httplib::Response& res) {
             Caller caller;
             if (!Authenticate(req, &res, "RetryRun", true, &caller)) return;
             absl::StatusOr<std::shared_ptr<RunHandle>> run =
                 engine_->Retry(req.matches[1]);
             if (!run.ok()) return SendError(&res, run.status());
             SendJson(&res, nlohmann::json{{"run_id", (*run)->id()}});
           });
}

}  // namespace kiln::service::http
