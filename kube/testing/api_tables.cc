#include "kube/testing/api_tables.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kube/testing/api_objects.h"
#include "kube/testing/api_protocol.h"

namespace kiln::kube::testing::fake_api {

using nlohmann::json;

namespace {

std::string HumanDuration(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 0) s = 0;
  if (s < 120) return absl::StrCat(s, "s");
  int64_t m = s / 60;
  if (m < 10) {
    return s % 60 == 0 ? absl::StrCat(m, "m")
                       : absl::StrCat(m, "m", s % 60, "s");
  }
  if (m < 180) return absl::StrCat(m, "m");
  int64_t h = m / 60;
  if (h < 8) {
    return m % 60 == 0 ? absl::StrCat(h, "h")
                       : absl::StrCat(h, "h", m % 60, "m");
  }
  if (h < 48) return absl::StrCat(h, "h");
  int64_t days = h / 24;
  if (h < 24 * 8) {
    return h % 24 == 0 ? absl::StrCat(days, "d")
                       : absl::StrCat(days, "d", h % 24, "h");
  }
  if (days < 365 * 2) return absl::StrCat(days, "d");
  return absl::StrCat(days / 365, "y");
}

std::string Age(const json& obj) {
  absl::StatusOr<absl::Time> t =
      ParseTime(MetaString(obj, "creationTimestamp"));
  return t.ok() ? HumanDuration(absl::Now() - *t) : "<unknown>";
}

// The STATUS column of `kubectl get pods`.
std::string PodStatusColumn(const json& pod) {
  const json& st = pod.contains("status") ? pod["status"] : json::object();
  std::string reason = st.value("reason", st.value("phase", "Unknown"));
  if (st.contains("containerStatuses")) {
    for (const json& cs : st["containerStatuses"]) {
      if (!cs.contains("state")) continue;
      const json& state = cs["state"];
      if (state.contains("waiting") &&
          !state["waiting"].value("reason", "").empty()) {
        reason = state["waiting"]["reason"];
      } else if (state.contains("terminated")) {
        std::string r = state["terminated"].value("reason", "");
        if (!r.empty()) reason = r;
      }
    }
  }
  if (pod["metadata"].contains("deletionTimestamp")) reason = "Terminating";
  return reason;
}

json Column(const std::string& name, const std::string& type,
            const std::string& format = "") {
  return {{"name", name},
          {"type", type},
          {"format", format},
          {"description", name},
          {"priority", 0}};
}

}  // namespace

json TableColumns(const Resource& r) {
  json cols = json::array({Column("Name", "string", "name")});
  if (r.plural == "pods") {
    cols.push_back(Column("Ready", "string"));
    cols.push_back(Column("Status", "string"));
    cols.push_back(Column("Restarts", "string"));
  } else if (r.plural == "secrets") {
    cols.push_back(Column("Type", "string"));
    cols.push_back(Column("Data", "string"));
  } else if (r.plural == "configmaps") {
    cols.push_back(Column("Data", "string"));
  } else if (r.plural == "namespaces") {
    cols.push_back(Column("Status", "string"));
  }
  cols.push_back(Column("Age", "string"));
  return cols;
}

json TableRow(const Resource& r, const json& obj, const std::string& include) {
  json cells = json::array({MetaString(obj, "name")});
  if (r.plural == "pods") {
    int total = obj.contains("spec") && obj["spec"].contains("containers")
                    ? static_cast<int>(obj["spec"]["containers"].size())
                    : 0;
    int ready = 0, restarts = 0;
    if (obj.contains("status") && obj["status"].contains("containerStatuses")) {
      for (const json& cs : obj["status"]["containerStatuses"]) {
        if (cs.value("ready", false)) ++ready;
        restarts += cs.value("restartCount", 0);
      }
    }
    cells.push_back(absl::StrCat(ready, "/", total));
    cells.push_back(PodStatusColumn(obj));
    cells.push_back(absl::StrCat(restarts));
  } else if (r.plural == "secrets") {
    cells.push_back(obj.value("type", ""));
    cells.push_back(
        absl::StrCat(obj.contains("data") ? obj["data"].size() : 0));
  } else if (r.plural == "configmaps") {
    cells.push_back(
        absl::StrCat(obj.contains("data") ? obj["data"].size() : 0));
  } else if (r.plural == "namespaces") {
    cells.push_back(obj.contains("status") ? obj["status"].value("phase", "")
                                           : "");
  }
  cells.push_back(Age(obj));
  json row = {{"cells", cells}};
  if (include == "Object") {
    json full = obj;
    full["kind"] = r.kind;
    full["apiVersion"] = r.api_version();
    row["object"] = full;
  } else if (include != "None") {
    row["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/v1"},
                     {"metadata", obj.value("metadata", json::object())}};
  }
  return row;
}

json ToTable(const Resource& r, const std::vector<json>& objects,
             const json& list_meta, bool with_columns,
             const std::string& include) {
  json rows = json::array();
  for (const json& o : objects) rows.push_back(TableRow(r, o, include));
  json t = {{"kind", "Table"},
            {"apiVersion", "meta.k8s.io/v1"},
            {"metadata", list_meta},
            {"rows", rows}};
  if (with_columns) t["columnDefinitions"] = TableColumns(r);
  return t;
}

bool WantsTable(const httplib::Request& req) {
  return absl::StrContains(req.get_header_value("Accept"), "as=Table");
}

}  // namespace kiln::kube::testing::fake_api
