#include "kube/testing/kubelet/container_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using json = nlohmann::json;

constexpr char kDefaultMessagePath[] = "/dev/termination-log";

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// A clean absolute path: no "", ".", ".." components.
bool CleanAbsolute(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path == "/") return true;
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

// `path` relative to `dir` when it lies strictly below it.
std::optional<std::string> Below(const std::string& path,
                                 const std::string& dir) {
  std::string prefix = dir == "/" ? "/" : dir + "/";
  if (!absl::StartsWith(path, prefix) || path.size() == prefix.size()) {
    return std::nullopt;
  }
  return path.substr(prefix.size());
}

ConfigResult Fail(const char* reason, std::string message) {
  ConfigResult r;
  r.error = {reason, std::move(message)};
  return r;
}

}  // namespace

ConfigResult BuildContainerConfig(
    const json& pod, const json& container,
    const std::map<std::string, std::string>& volume_dirs,
    const SecretLookup& secrets) {
  ContainerConfig c;
  c.name = Str(container, "name");
  c.image = Str(container, "image");
  for (const char* key : {"command", "args"}) {
    if (!container.contains(key)) continue;
    for (const json& a : container[key]) {
      if (!a.is_string()) {
        return Fail("CreateContainerError",
                    absl::StrCat(key, " holds a value that is not a string"));
      }
      c.argv.push_back(a.get<std::string>());
    }
  }
  if (!container.contains("command") || c.argv.empty()) {
    return Fail("CreateContainerError",
                "the sandbox kubelet needs the container's command (image "
                "entrypoints are not modelled)");
  }
  if (container.contains("env")) {
    for (const json& e : container["env"]) {
      std::string name = Str(e, "name");
      if (e.contains("value")) {
        c.env[name] = Str(e, "value");
        continue;
      }
      if (!e.contains("valueFrom")) {
        c.env[name] = "";
        continue;
      }
      const json& from = e["valueFrom"];
      if (!from.contains("secretKeyRef")) {
        return Fail("CreateContainerConfigError",
                    absl::StrCat("env ", name,
                                 ": only valueFrom.secretKeyRef is modelled"));
      }
      const json& ref = from["secretKeyRef"];
      std::string secret = Str(ref, "name");
      std::string key = Str(ref, "key");
      bool optional = ref.value("optional", false);
      absl::StatusOr<std::map<std::string, std::string>> data = secrets(secret);
      if (!data.ok()) {
        if (optional) continue;
        return Fail("CreateContainerConfigError",
                    absl::StrCat("secret \"", secret, "\" not found"));
      }
      auto it = data->find(key);
      if (it == data->end()) {
        if (optional) continue;
        return Fail(
            "CreateContainerConfigError",
            absl::StrCat("couldn't find key ", key, " in Secret ",
                         Str(pod["metadata"], "namespace"), "/", secret));
      }
      c.env[name] = it->second;
    }
  }
  c.working_dir = Str(container, "workingDir");
  if (!c.working_dir.empty() && !CleanAbsolute(c.working_dir)) {
    return Fail("CreateContainerError",
                absl::StrCat("workingDir '", c.working_dir,
                             "' is not a clean absolute path"));
  }
  if (container.contains("volumeMounts")) {
    for (const json& m : container["volumeMounts"]) {
      std::string volume = Str(m, "name");
      std::string target = Str(m, "mountPath");
      auto it = volume_dirs.find(volume);
      if (it == volume_dirs.end()) {
        return Fail("CreateContainerConfigError",
                    absl::StrCat("volume \"", volume,
                                 "\" is not an emptyDir of the pod"));
      }
      if (!Str(m, "subPath").empty() || !Str(m, "subPathExpr").empty()) {
        return Fail("CreateContainerConfigError",
                    "subPath is not modelled by the sandbox kubelet");
      }
      if (!CleanAbsolute(target) || target == "/") {
        return Fail("CreateContainerConfigError",
                    absl::StrCat("mountPath '", target,
                                 "' is not a clean absolute path below /"));
      }
      c.binds.push_back({volume, it->second, target});
    }
  }
  std::string message_path = Str(container, "terminationMessagePath");
  if (message_path.empty()) message_path = kDefaultMessagePath;
  // The deepest mount holding the path (a nested mount covers its parent).
  size_t best = 0;
  for (const ContainerConfig::Bind& b : c.binds) {
    std::optional<std::string> rel = Below(message_path, b.target);
    if (rel && CleanAbsolute("/" + *rel) && b.target.size() >= best) {
      best = b.target.size();
      c.message_volume_dir = b.host;
      c.message_relative_path = *rel;
    }
  }
  if (c.message_relative_path.empty() && message_path != kDefaultMessagePath) {
    return Fail("CreateContainerConfigError",
                absl::StrCat("terminationMessagePath '", message_path,
                             "' must lie in one of the container's emptyDir "
                             "mounts (the sandbox kubelet reads it there)"));
  }
  c.fallback_to_logs =
      Str(container, "terminationMessagePolicy") == "FallbackToLogsOnError";
  if (pod["spec"].contains("terminationGracePeriodSeconds") &&
      pod["spec"]["terminationGracePeriodSeconds"].is_number_integer()) {
    c.grace_seconds =
        pod["spec"]["terminationGracePeriodSeconds"].get<int64_t>();
  }
  ConfigResult r;
  r.config = std::move(c);
  return r;
}

std::string TruncateTerminationMessage(const std::string& raw) {
  return raw.size() <= kMaxTerminationMessageBytes
             ? raw
             : raw.substr(0, kMaxTerminationMessageBytes);
}

std::string LogTailMessage(const std::vector<std::string>& lines) {
  size_t first =
      lines.size() > kFallbackLogLines ? lines.size() - kFallbackLogLines : 0;
  std::string text = absl::StrJoin(lines.begin() + first, lines.end(), "\n");
  if (text.size() > kFallbackLogBytes) {
    text = text.substr(text.size() - kFallbackLogBytes);
  }
  return text;
}

}  // namespace testing
}  // namespace kube
}  // namespace kiln
