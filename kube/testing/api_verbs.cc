// The API server double's verbs on a resource: get, list, watch, create,
// update, patch (merge, strategic, JSON, server-side apply) and delete.

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "kube/testing/api_tables.h"
#include "kube/testing/fake_api_server_impl.h"
#include "kube/testing/server_side_apply.h"

namespace kiln::kube::testing {

using fake_api::Conflict;
using fake_api::Err;
using fake_api::Expired;
using fake_api::MetaString;
using fake_api::NotFound;
using fake_api::RvOf;
using fake_api::SupportedFields;
using fake_api::WantsTable;

// ---- Verbs. ----
Reply FakeApiServer::Impl::Get(const Target& t) {
  MutexLock l(&mu_);
  if (t.res->namespaced && t.ns.empty()) {
    return Err(404, "the server could not find the requested resource");
  }
  json* o = Find(*t.res, t.ns, t.name);
  if (o == nullptr) return NotFound(*t.res, t.name);
  Reply rep;
  rep.body = *o;
  return rep;
}

Reply FakeApiServer::Impl::List(const Target& t, const Request& r) {
  absl::StatusOr<LabelSelector> ls =
      LabelSelector::Parse(r.param("labelSelector"));
  if (!ls.ok()) return Err(400, std::string(ls.status().message()));
  absl::StatusOr<FieldSelector> fs =
      FieldSelector::Parse(r.param("fieldSelector"), SupportedFields(*t.res));
  if (!fs.ok()) return Err(400, std::string(fs.status().message()));
  int64_t limit = 0;
  if (!r.param("limit").empty() &&
      !absl::SimpleAtoi(r.param("limit"), &limit)) {
    return Err(400, "limit must be a number");
  }
  std::string start;
  MutexLock l(&mu_);
  if (!r.param("continue").empty()) {
    std::string raw;
    json tok;
    if (absl::WebSafeBase64Unescape(r.param("continue"), &raw)) {
      tok = json::parse(raw, nullptr, false);
    }
    if (!tok.is_object() || !tok.contains("rv") || !tok.contains("start")) {
      return Err(400, "invalid continue token");
    }
    if (tok["rv"].get<int64_t>() < compacted_rv_) {
      return Err(410,
                 "The provided continue parameter is too old to display a "
                 "consistent list result. You can start a new list without "
                 "the continue parameter.",
                 "Expired");
    }
    start = tok["start"].get<std::string>();
  }
  std::string rv_match = r.param("resourceVersionMatch");
  if (rv_match == "Exact") {
    int64_t want = 0;
    if (!absl::SimpleAtoi(r.param("resourceVersion"), &want)) {
      return Err(400, "resourceVersionMatch=Exact needs a resourceVersion");
    }
    if (want != rv_) {
      return Expired(want, compacted_rv_ + 1);
    }
  }
  Watcher w;
  w.labels = *ls;
  w.fields = *fs;
  json items = json::array();
  std::string cont;
  for (const auto& [k, v] : Bucket(*t.res)) {
    if (t.res->namespaced && !t.ns.empty() &&
        !absl::StartsWith(k, t.ns + "/")) {
      continue;
    }
    if (!start.empty() && k <= start) continue;
    if (!WatcherSees(w, v)) continue;
    if (limit > 0 && static_cast<int64_t>(items.size()) == limit) {
      json tok = {{"rv", rv_}, {"start", start}};
      cont = absl::WebSafeBase64Escape(tok.dump());
      break;
    }
    json item = v;
    item.erase("kind");
    item.erase("apiVersion");
    items.push_back(std::move(item));
    start = k;
  }
  Reply rep;
  json meta = {{"resourceVersion", absl::StrCat(rv_)}};
  if (!cont.empty()) meta["continue"] = cont;
  rep.body = {{"kind", t.res->kind + "List"},
              {"apiVersion", t.res->api_version()},
              {"metadata", meta},
              {"items", items}};
  return rep;
}

Reply FakeApiServer::Impl::Watch(const Target& t, const Request& r,
                                 httplib::Response& res, bool* streamed) {
  absl::StatusOr<LabelSelector> ls =
      LabelSelector::Parse(r.param("labelSelector"));
  if (!ls.ok()) return Err(400, std::string(ls.status().message()));
  absl::StatusOr<FieldSelector> fs =
      FieldSelector::Parse(r.param("fieldSelector"), SupportedFields(*t.res));
  if (!fs.ok()) return Err(400, std::string(fs.status().message()));
  absl::Duration timeout = opts_.default_watch_timeout;
  if (!r.param("timeoutSeconds").empty()) {
    int64_t s;
    if (!absl::SimpleAtoi(r.param("timeoutSeconds"), &s) || s < 0) {
      return Err(400, "timeoutSeconds must be a non-negative number");
    }
    if (s > 0) timeout = absl::Seconds(s);
  }
  if (r.flag("sendInitialEvents")) {
    return Err(422,
               "sendInitialEvents (watch-list) is not supported by the "
               "double");
  }
  std::string rv_text = r.param("resourceVersion");
  int64_t from = 0;
  if (!rv_text.empty() && !absl::SimpleAtoi(rv_text, &from)) {
    return Err(400, absl::StrCat("invalid resourceVersion \"", rv_text, "\""));
  }
  auto w = std::make_shared<Watcher>();
  w->res = t.res;
  w->ns = t.ns;
  w->labels = *ls;
  w->fields = *fs;
  w->bookmarks = r.flag("allowWatchBookmarks");
  w->table = WantsTable(*r.http);
  w->include_object = r.param("includeObject");
  w->deadline = absl::Now() + timeout;
  w->next_bookmark = absl::Now() + opts_.bookmark_interval;
  {
    MutexLock l(&mu_);
    if (from == 0) {
      // From "now": the current objects as ADDED, then changes.
      for (const auto& [k, v] : Bucket(*t.res)) {
        if (!t.ns.empty() && !absl::StartsWith(k, t.ns + "/")) continue;
        auto c = std::make_shared<Change>();
        c->rv = rv_;
        c->res = t.res;
        c->ns = MetaString(v, "namespace");
        c->type = "ADDED";
        c->object = v;
        w->queue.push_back(c);
      }
    } else if (from < compacted_rv_ ||
               (!history_.empty() && from < history_.front()->rv - 1 &&
                from < compacted_rv_)) {
      w->expired = true;
      w->expired_rv = from;
    } else {
      for (const auto& c : history_) {
        if (c->rv <= from || c->res != t.res) continue;
        if (!t.ns.empty() && c->ns != t.ns) continue;
        w->queue.push_back(c);
      }
    }
    watchers_.push_back(w);
  }
  *streamed = true;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache, private");
  res.set_chunked_content_provider(
      "application/json",
      [this, w](size_t, httplib::DataSink& sink) {
        std::string out;
        enum { kMore, kDone, kDrop } next = kMore;
        {
          MutexLock l(&mu_);
          absl::Time wake = w->deadline;
          if (w->bookmarks) wake = std::min(wake, w->next_bookmark);
          mu_.AwaitWithDeadline(
              [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return stopping_ || w->dropped || w->expired ||
                       !w->queue.empty();
              },
              wake);
          if (stopping_) {
            next = kDone;
          } else if (w->dropped) {
            next = kDrop;
          } else {
            while (!w->queue.empty()) {
              AppendEvent(*w, *w->queue.front(), &out);
              w->queue.pop_front();
            }
            absl::Time now = absl::Now();
            if (w->expired) {
              json ev = {
                  {"type", "ERROR"},
                  {"object", Expired(w->expired_rv, compacted_rv_ + 1).body}};
              absl::StrAppend(&out, ev.dump(), "\n");
              next = kDone;
            } else if (now >= w->deadline) {
              next = kDone;
            } else if (w->bookmarks && now >= w->next_bookmark) {
              json ev = {
                  {"type", "BOOKMARK"},
                  {"object",
                   {{"kind", w->res->kind},
                    {"apiVersion", w->res->api_version()},
                    {"metadata", {{"resourceVersion", absl::StrCat(rv_)}}}}}};
              absl::StrAppend(&out, ev.dump(), "\n");
              w->next_bookmark = now + opts_.bookmark_interval;
            }
          }
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (next == kDrop) return false;
        if (next == kDone) sink.done();
        return true;
      },
      [this, w](bool) {
        MutexLock l(&mu_);
        watchers_.remove(w);
      });
  return Reply();
}

Reply FakeApiServer::Impl::Create(const Target& t, json obj, bool dry_run,
                                  const std::string& manager) {
  json stored;
  Reply rep;
  std::function<void(const json&)> hook;
  {
    MutexLock l(&mu_);
    TrackUpdate(json(), &obj, manager, t.res->api_version(), absl::Now());
    rep = StoreNew(*t.res, t.ns, std::move(obj), dry_run, &stored);
    if (rep.code < 300 && !dry_run && t.res->plural == "pods") {
      hook = hooks_.on_pod_created;
    }
  }
  if (hook) hook(stored);
  return rep;
}

Reply FakeApiServer::Impl::Update(const Target& t, json obj, bool dry_run,
                                  const std::string& manager) {
  json stored;
  MutexLock l(&mu_);
  if (const json* cur = Find(*t.res, t.ns, t.name); cur && t.sub.empty()) {
    TrackUpdate(*cur, &obj, manager, t.res->api_version(), absl::Now());
  }
  return StoreUpdate(*t.res, t.ns, t.name, t.sub, std::move(obj), dry_run,
                     &stored);
}

Reply FakeApiServer::Impl::Patch(const Target& t,
                                 const std::string& content_type,
                                 const json& patch, bool dry_run,
                                 const std::string& manager) {
  std::string ct(absl::StripAsciiWhitespace(
      std::string(content_type.substr(0, content_type.find(';')))));
  MutexLock l(&mu_);
  json* cur = Find(*t.res, t.ns, t.name);
  if (cur == nullptr) return NotFound(*t.res, t.name);
  absl::StatusOr<json> next;
  if (ct == "application/merge-patch+json") {
    next = ApplyMergePatch(*cur, patch);
  } else if (ct == "application/strategic-merge-patch+json") {
    next = ApplyStrategicMergePatch(*cur, patch);
  } else if (ct == "application/json-patch+json") {
    next = ApplyJsonPatch(*cur, patch);
  } else {
    return Err(415,
               absl::StrCat("the double does not support patch type \"", ct,
                            "\" (merge, strategic-merge and json-patch are "
                            "supported)"));
  }
  if (!next.ok()) return Err(422, std::string(next.status().message()));
  json body = *next;
  // A patch carrying a resourceVersion is a precondition; one without is
  // applied to the current object.
  if (RvOf(body) != RvOf(*cur)) {
    if (RvOf(body) > 0) return Conflict(*t.res, t.name);
  }
  body["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
  if (t.sub.empty()) {
    TrackUpdate(*cur, &body, manager, t.res->api_version(), absl::Now());
  }
  json stored;
  return StoreUpdate(*t.res, t.ns, t.name, t.sub, std::move(body), dry_run,
                     &stored);
}

Reply FakeApiServer::Impl::ApplyPatch(const Target& t, const json& applied,
                                      bool dry_run, const std::string& manager,
                                      bool force) {
  if (manager.empty()) {
    return Err(400,
               "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
               "Required value: is required for apply patch",
               "BadRequest");
  }
  if (!t.sub.empty()) return Err(405, "apply to a subresource");
  if (!applied.is_object()) return Err(400, "the apply body must be an object");
  std::string kind = applied.value("kind", "");
  std::string av = applied.value("apiVersion", "");
  if (kind != t.res->kind || av != t.res->api_version()) {
    return Err(400, absl::StrCat("the API version in the data (", av, " ", kind,
                                 ") does not match the expected API version (",
                                 t.res->api_version(), " ", t.res->kind, ")"));
  }
  if (MetaString(applied, "name") != t.name) {
    return Err(400, absl::StrCat(
                        "the name of the object (", MetaString(applied, "name"),
                        ") does not match the name on the URL (", t.name, ")"));
  }
  json cur_copy;
  {
    MutexLock l(&mu_);
    if (const json* cur = Find(*t.res, t.ns, t.name)) cur_copy = *cur;
  }
  ApplyResult a = ServerSideApply(cur_copy, applied, manager, force,
                                  t.res->api_version(), absl::Now());
  if (a.code == 409) {
    return Err(409, a.message, "Conflict",
               json{{"name", t.name},
                    {"group", t.res->group},
                    {"kind", t.res->plural},
                    {"causes", a.causes}});
  }
  if (a.code != 200) return Err(a.code, a.message);
  if (cur_copy.is_null()) {
    return Create(t, std::move(a.object), dry_run, "");
  }
  MutexLock l(&mu_);
  json* cur = Find(*t.res, t.ns, t.name);
  if (cur == nullptr || (*cur)["metadata"]["resourceVersion"] !=
                            cur_copy["metadata"]["resourceVersion"]) {
    return Err(409,
               "Operation cannot be fulfilled: the object changed during "
               "the apply; retry",
               "Conflict");
  }
  json stored;
  return StoreUpdate(*t.res, t.ns, t.name, "", std::move(a.object), dry_run,
                     &stored);
}

Reply FakeApiServer::Impl::Delete(const Target& t, const Request& r,
                                  const json& options) {
  std::optional<int64_t> grace;
  if (!r.param("gracePeriodSeconds").empty()) {
    int64_t g;
    if (!absl::SimpleAtoi(r.param("gracePeriodSeconds"), &g)) {
      return Err(400, "gracePeriodSeconds must be a number");
    }
    grace = g;
  }
  if (options.is_object() && options.contains("gracePeriodSeconds") &&
      options["gracePeriodSeconds"].is_number_integer()) {
    grace = options["gracePeriodSeconds"].get<int64_t>();
  }
  std::function<void(const json&)> hook;
  json marked;
  Reply rep;
  {
    MutexLock l(&mu_);
    json* cur = Find(*t.res, t.ns, t.name);
    if (cur == nullptr) return NotFound(*t.res, t.name);
    if (options.is_object() && options.contains("preconditions")) {
      const json& pre = options["preconditions"];
      if (pre.contains("uid") && pre["uid"] != (*cur)["metadata"]["uid"]) {
        return Err(409,
                   "Precondition failed: UID in precondition does not "
                   "match the object's",
                   "Conflict");
      }
      if (pre.contains("resourceVersion") &&
          pre["resourceVersion"] != (*cur)["metadata"]["resourceVersion"]) {
        return Conflict(*t.res, t.name);
      }
    }
    if (t.res->plural == "namespaces" &&
        opts_.namespace_termination > absl::ZeroDuration()) {
      // The namespace controller's work: Terminating, content deleted,
      // gone later (namespace_lifecycle.h).
      if (!IsNamespaceTerminating(*cur)) {
        json prev = *cur;
        MarkNamespaceTerminating(*cur, absl::Now());
        ++rv_;
        (*cur)["metadata"]["resourceVersion"] = absl::StrCat(rv_);
        Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
        RemoveNamespaceContents(t.name);
        reaper_->Schedule(t.name);
      }
      rep.body = *cur;
      return rep;
    }
    json& meta = (*cur)["metadata"];
    bool is_pod = t.res->plural == "pods";
    bool has_finalizers =
        meta.contains("finalizers") && !meta["finalizers"].empty();
    int64_t g = 0;
    if (is_pod) {
      g = grace.value_or(
          (*cur)["spec"].value("terminationGracePeriodSeconds", 30));
      std::string phase = (*cur)["status"].value("phase", "");
      if ((*cur)["spec"].value("nodeName", "").empty() ||
          phase == "Succeeded" || phase == "Failed" ||
          !hooks_.on_pod_deleting) {
        g = 0;
      }
    }
    bool already = meta.contains("deletionTimestamp");
    if (is_pod && g > 0 && !already) {
      json prev = *cur;
      meta["deletionTimestamp"] =
          FormatTimeSeconds(absl::Now() + absl::Seconds(g));
      meta["deletionGracePeriodSeconds"] = g;
      ++rv_;
      meta["resourceVersion"] = absl::StrCat(rv_);
      Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
      marked = *cur;
      hook = hooks_.on_pod_deleting;
      rep.body = *cur;
    } else if (is_pod && g > 0 && already) {
      rep.body = *cur;  // deletion already in progress
    } else if (has_finalizers) {
      if (!already) {
        json prev = *cur;
        meta["deletionTimestamp"] = FormatTimeSeconds(absl::Now());
        meta["deletionGracePeriodSeconds"] = 0;
        ++rv_;
        meta["resourceVersion"] = absl::StrCat(rv_);
        Emit(*t.res, t.ns, "MODIFIED", *cur, prev);
      }
      rep.body = *cur;
    } else {
      json obj = *cur;
      Remove(*t.res, t.ns, t.name);
      if (is_pod) {
        rep.body = obj;
      } else {
        rep.body = {{"kind", "Status"},
                    {"apiVersion", "v1"},
                    {"metadata", json::object()},
                    {"status", "Success"},
                    {"details",
                     {{"name", t.name},
                      {"group", t.res->group},
                      {"kind", t.res->plural},
                      {"uid", obj["metadata"]["uid"]}}}};
      }
    }
  }
  if (hook) hook(marked);
  return rep;
}

}  // namespace kiln::kube::testing
