// The API server double's pods beyond storage: container logs (and
// pods/log with follow), events, and the kubelet's part in deletion.

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "kube/testing/fake_api_server_impl.h"

namespace kiln::kube::testing {

using fake_api::Err;
using fake_api::FindResource;
using fake_api::MetaString;
using fake_api::NotFound;
using fake_api::PodsResource;

// ---- Logs. ----
Reply FakeApiServer::Impl::Logs(const Target& t, const Request& r,
                                httplib::Response& res, bool* streamed) {
  std::string container = r.param("container");
  bool follow = r.flag("follow");
  bool timestamps = r.flag("timestamps");
  bool previous = r.flag("previous");
  std::optional<absl::Time> since;
  if (!r.param("sinceTime").empty()) {
    absl::StatusOr<absl::Time> st = ParseTime(r.param("sinceTime"));
    if (!st.ok()) return Err(400, std::string(st.status().message()));
    // The kubelet gets sinceTime in whole seconds.
    since = absl::FromUnixSeconds(absl::ToUnixSeconds(*st));
  }
  if (!r.param("sinceSeconds").empty()) {
    int64_t s;
    if (!absl::SimpleAtoi(r.param("sinceSeconds"), &s) || s < 1) {
      return Err(422, "sinceSeconds must be a positive number");
    }
    if (since.has_value()) {
      return Err(422, "at most one of sinceTime or sinceSeconds may be given");
    }
    since = absl::Now() - absl::Seconds(s);
  }
  int64_t tail = -1, limit_bytes = -1;
  if (!r.param("tailLines").empty() &&
      (!absl::SimpleAtoi(r.param("tailLines"), &tail) || tail < 0)) {
    return Err(422, "tailLines must be a non-negative number");
  }
  if (!r.param("limitBytes").empty() &&
      (!absl::SimpleAtoi(r.param("limitBytes"), &limit_bytes) ||
       limit_bytes < 1)) {
    return Err(422, "limitBytes must be a positive number");
  }
  std::string key, uid;
  size_t next_line = 0;
  int64_t drop_gen;
  std::string text;
  bool done_now = false;
  auto format = [timestamps](const LogLine& l) {
    return timestamps ? absl::StrCat(FormatTimeNano(l.time), " ", l.text, "\n")
                      : absl::StrCat(l.text, "\n");
  };
  {
    MutexLock l(&mu_);
    json* pod = Find(*t.res, t.ns, t.name);
    if (pod == nullptr) return NotFound(*t.res, t.name);
    uid = (*pod)["metadata"].value("uid", "");
    std::vector<std::string> names;
    for (const char* list : {"containers", "initContainers"}) {
      if (!(*pod)["spec"].contains(list)) continue;
      for (const json& c : (*pod)["spec"][list])
        names.push_back(c.value("name", ""));
    }
    if (container.empty()) {
      size_t main = (*pod)["spec"]["containers"].size();
      std::string ann = (*pod)["metadata"].contains("annotations")
                            ? (*pod)["metadata"]["annotations"].value(
                                  "kubectl.kubernetes.io/default-container", "")
                            : "";
      if (!ann.empty()) {
        container = ann;
      } else if (main == 1) {
        container = names[0];
      } else {
        return Err(400, absl::StrCat("a container name must be specified for "
                                     "pod ",
                                     t.name, ", choose one of: [",
                                     absl::StrJoin(names, " "), "]"));
      }
    }
    if (std::find(names.begin(), names.end(), container) == names.end()) {
      return Err(400, absl::StrCat("container ", container,
                                   " is not valid for pod ", t.name));
    }
    if (previous) {
      return Err(400,
                 absl::StrCat("previous terminated container \"", container,
                              "\" in pod \"", t.name, "\" not found"));
    }
    key = LogKey(t.ns, t.name, container);
    auto lb = logs_.find(key);
    if (lb == logs_.end()) {
      // Started per the pod's status?
      std::string waiting = "ContainerCreating";
      bool started = false;
      const json& st = (*pod)["status"];
      for (const char* list : {"containerStatuses", "initContainerStatuses"}) {
        if (!st.contains(list)) continue;
        for (const json& cs : st[list]) {
          if (cs.value("name", "") != container || !cs.contains("state"))
            continue;
          if (cs["state"].contains("running") ||
              cs["state"].contains("terminated")) {
            started = true;
          } else if (cs["state"].contains("waiting")) {
            waiting = cs["state"]["waiting"].value("reason", waiting);
          }
        }
      }
      if (!started) {
        return Err(
            400, absl::StrCat("container \"", container, "\" in pod \"", t.name,
                              "\" is waiting to start: ", waiting));
      }
      logs_[key];  // started, no output yet
      lb = logs_.find(key);
    }
    const std::vector<LogLine>& lines = lb->second.lines;
    size_t first = 0;
    if (since.has_value()) {
      while (first < lines.size() && lines[first].time < *since) ++first;
    }
    if (tail >= 0 && lines.size() - first > static_cast<size_t>(tail)) {
      first = lines.size() - static_cast<size_t>(tail);
    }
    for (size_t i = first; i < lines.size(); ++i) text += format(lines[i]);
    next_line = lines.size();
    drop_gen = log_drop_gen_;
    done_now = !follow || lb->second.ended;
  }
  if (limit_bytes > 0 && static_cast<int64_t>(text.size()) >= limit_bytes) {
    text.resize(static_cast<size_t>(limit_bytes));
    done_now = true;
  }
  *streamed = true;
  res.status = 200;
  if (done_now) {
    res.set_content(text, "text/plain");
    return Reply();
  }
  struct State {
    std::string pending;
    size_t next_line;
    int64_t bytes_left;
  };
  auto st = std::make_shared<State>();
  st->pending = std::move(text);
  st->next_line = next_line;
  st->bytes_left = limit_bytes > 0 ? limit_bytes : -1;
  std::string ns = t.ns, pod_name = t.name;
  res.set_chunked_content_provider(
      "text/plain", [this, st, key, uid, ns, pod_name, drop_gen, since, format](
                        size_t, httplib::DataSink& sink) {
        std::string out = std::move(st->pending);
        st->pending.clear();
        bool done = false, drop = false;
        if (out.empty()) {
          MutexLock l(&mu_);
          auto has_more = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
            if (stopping_ || log_drop_gen_ != drop_gen) return true;
            auto lb = logs_.find(key);
            return lb == logs_.end() || lb->second.ended ||
                   lb->second.lines.size() > st->next_line;
          };
          mu_.AwaitWithDeadline(has_more, absl::Now() + absl::Seconds(1));
          if (log_drop_gen_ != drop_gen) {
            drop = true;
          } else {
            auto lb = logs_.find(key);
            json* pod = Find(PodsResource(), ns, pod_name);
            bool gone = lb == logs_.end() || pod == nullptr ||
                        (*pod)["metadata"].value("uid", "") != uid;
            if (!gone) {
              const auto& lines = lb->second.lines;
              for (; st->next_line < lines.size(); ++st->next_line) {
                const LogLine& ln = lines[st->next_line];
                if (since.has_value() && ln.time < *since) continue;
                out += format(ln);
              }
            }
            done = stopping_ || gone || lb->second.ended;
          }
        }
        if (drop) return false;
        if (st->bytes_left >= 0) {
          if (static_cast<int64_t>(out.size()) >= st->bytes_left) {
            out.resize(static_cast<size_t>(st->bytes_left));
            done = true;
          }
          st->bytes_left -= static_cast<int64_t>(out.size());
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (done) sink.done();
        return true;
      });
  return Reply();
}

absl::Status FakeApiServer::Impl::MutatePod(
    const std::string& ns, const std::string& name,
    const std::function<void(json&)>& fn) {
  MutexLock l(&mu_);
  const Resource& r = PodsResource();
  json* cur = Find(r, ns, name);
  if (cur == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("pods \"", name, "\" not found in ", ns));
  }
  json prev = *cur;
  fn(*cur);
  json& meta = (*cur)["metadata"];
  for (const char* f : {"name", "namespace", "uid", "creationTimestamp"}) {
    meta[f] = prev["metadata"][f];
  }
  (*cur)["kind"] = "Pod";
  (*cur)["apiVersion"] = "v1";
  ++rv_;
  meta["resourceVersion"] = absl::StrCat(rv_);
  Emit(r, ns, "MODIFIED", *cur, prev);
  return absl::OkStatus();
}

void FakeApiServer::Impl::RecordObjectEvent(const json& object,
                                            const std::string& type,
                                            const std::string& reason,
                                            const std::string& message,
                                            const std::string& component) {
  std::string ns = MetaString(object, "namespace");
  std::string name = MetaString(object, "name");
  std::string now = FormatTimeSeconds(absl::Now());
  MutexLock l(&mu_);
  json ev = {
      {"metadata",
       {{"name",
         absl::StrFormat("%s.%x", name,
                         absl::ToUnixNanos(absl::Now()) + ++event_seq_)}}},
      {"involvedObject",
       {{"kind", object.value("kind", "")},
        {"namespace", ns},
        {"name", name},
        {"uid", MetaString(object, "uid")},
        {"apiVersion", object.value("apiVersion", "")}}},
      {"reason", reason},
      {"message", message},
      {"type", type},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", {{"component", component}}},
      {"reportingComponent", component},
  };
  json stored;
  StoreNew(*FindResource("", "v1", "events"), ns, ev, false, &stored);
}

void FakeApiServer::Impl::AppendLog(const std::string& ns,
                                    const std::string& pod,
                                    const std::string& container,
                                    absl::string_view line, absl::Time time) {
  MutexLock l(&mu_);
  if (Find(PodsResource(), ns, pod) == nullptr) return;
  LogBuf& b = logs_[LogKey(ns, pod, container)];
  b.lines.push_back({time, std::string(line)});
}

void FakeApiServer::Impl::EndLog(const std::string& ns, const std::string& pod,
                                 const std::string& container) {
  MutexLock l(&mu_);
  if (Find(PodsResource(), ns, pod) == nullptr) return;
  logs_[LogKey(ns, pod, container)].ended = true;
}

void FakeApiServer::Impl::RecordEvent(const std::string& ns,
                                      const std::string& pod,
                                      const std::string& type,
                                      const std::string& reason,
                                      const std::string& message) {
  // The kubelet's event about a pod: the pod's uid when it (still) exists.
  json object = {{"kind", "Pod"},
                 {"apiVersion", "v1"},
                 {"metadata", {{"namespace", ns}, {"name", pod}}}};
  {
    MutexLock l(&mu_);
    if (const json* p = Find(PodsResource(), ns, pod)) {
      object["metadata"]["uid"] = (*p)["metadata"].value("uid", "");
    }
  }
  RecordObjectEvent(object, type, reason, message, "kubelet");
}

absl::Status FakeApiServer::Impl::FinalizePodDeletion(const std::string& ns,
                                                      const std::string& name) {
  MutexLock l(&mu_);
  const Resource& r = PodsResource();
  json* cur = Find(r, ns, name);
  if (cur == nullptr) {
    return absl::NotFoundError(absl::StrCat("pods \"", name, "\" not found"));
  }
  json& meta = (*cur)["metadata"];
  if (!meta.contains("deletionTimestamp")) {
    return absl::FailedPreconditionError(
        absl::StrCat("pod ", ns, "/", name, " is not being deleted"));
  }
  if (meta.contains("finalizers") && !meta["finalizers"].empty()) {
    json prev = *cur;
    meta["deletionGracePeriodSeconds"] = 0;
    ++rv_;
    meta["resourceVersion"] = absl::StrCat(rv_);
    Emit(r, ns, "MODIFIED", *cur, prev);
    return absl::OkStatus();
  }
  Remove(r, ns, name);
  return absl::OkStatus();
}

}  // namespace kiln::kube::testing
