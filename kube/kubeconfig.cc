#include "kube/kubeconfig.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace kiln::kube {
namespace {

constexpr char kServiceAccountDir[] =
    "/var/run/secrets/kubernetes.io/serviceaccount";

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return absl::StrCat(dir, "/", path);
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(what, " ", path, ": cannot be read"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string HomeDir() {
  const char* home = getenv("HOME");
  if (home != nullptr && home[0] != '\0') return home;
  struct passwd* pw = getpwuid(getuid());
  return pw != nullptr && pw->pw_dir != nullptr ? pw->pw_dir : "";
}

// One file's entry of clusters/users/contexts, with where it came from.
struct Entry {
  YAML::Node node;  // the inner "cluster:" / "user:" / "context:" map
  std::string file;
  std::string dir;
};

struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::vector<std::string> files;
};

std::string Where(const std::string& file, const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  if (mark.is_null()) return file;
  return absl::StrCat(file, ":", mark.line + 1, ":", mark.column + 1);
}

// A scalar string field of `map` ("" when absent); error when not a scalar.
absl::StatusOr<std::string> Str(const Entry& e, const char* key) {
  YAML::Node v = e.node[key];
  if (!v || v.IsNull()) return std::string();
  if (!v.IsScalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(e.file, v), ": ", key, " must be a string"));
  }
  return v.as<std::string>();
}

absl::Status MergeList(const std::string& file, const YAML::Node& root,
                       const char* list_key, const char* inner_key,
                       std::map<std::string, Entry>* into) {
  YAML::Node list = root[list_key];
  if (!list || list.IsNull()) return absl::OkStatus();
  if (!list.IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(file, list), ": ", list_key, " must be a list"));
  }
  for (const YAML::Node& item : list) {
    if (!item.IsMap() || !item["name"] || !item["name"].IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(file, item), ": each of ", list_key, " needs a name"));
    }
    std::string name = item["name"].as<std::string>();
    YAML::Node inner = item[inner_key];
    if (inner && !inner.IsNull() && !inner.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(file, inner), ": ", list_key, "[", name, "].",
                       inner_key, " must be a map"));
    }
    // The first file to define a name wins (client-go merge rule).
    if (into->count(name) == 0) {
      into->emplace(name, Entry{inner ? inner : YAML::Node(YAML::NodeType::Map),
                                file, DirOf(file)});
    }
  }
  return absl::OkStatus();
}

absl::Status MergeFile(const std::string& file, Merged* merged) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.what()));
  }
  merged->files.push_back(file);
  if (root.IsNull()) return absl::OkStatus();  // an empty file
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(file, root), ": a kubeconfig must be a map"));
  }
  try {
    if (absl::Status s =
            MergeList(file, root, "clusters", "cluster", &merged->clusters);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = MergeList(file, root, "users", "user", &merged->users);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            MergeList(file, root, "contexts", "context", &merged->contexts);
        !s.ok()) {
      return s;
    }
    YAML::Node current = root["current-context"];
    if (merged->current_context.empty() && current && current.IsScalar()) {
      merged->current_context = current.as<std::string>();
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.what()));
  }
  return absl::OkStatus();
}

// PEM from `<key>-data` (base64) or `<key>` (a file), the data winning.
absl::StatusOr<std::string> Pem(const Entry& e, const std::string& key) {
  absl::StatusOr<std::string> data = Str(e, (key + "-data").c_str());
  if (!data.ok()) return data.status();
  if (!data->empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(*data, &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(e.file, e.node[key + "-data"]), ": ", key,
                       "-data is not base64"));
    }
    return decoded;
  }
  absl::StatusOr<std::string> path = Str(e, key.c_str());
  if (!path.ok()) return path.status();
  if (path->empty()) return std::string();
  return ReadFile(Resolve(e.dir, *path), key);
}

absl::Status RefuseUnsupported(const Entry& e, const char* key,
                               absl::string_view what) {
  if (e.node[key]) {
    return absl::UnimplementedError(
        absl::StrCat(Where(e.file, e.node[key]), ": ", key, " (", what,
                     ") is not supported by kiln's Kubernetes client"));
  }
  return absl::OkStatus();
}

absl::Status FillCluster(const Entry& e, ClusterConfig* config) {
  for (auto [key, what] :
       {std::pair<const char*, const char*>{"proxy-url", "an HTTP proxy"}}) {
    if (absl::Status s = RefuseUnsupported(e, key, what); !s.ok()) return s;
  }
  absl::StatusOr<std::string> server = Str(e, "server");
  if (!server.ok()) return server.status();
  if (!absl::StartsWith(*server, "https://") &&
      !absl::StartsWith(*server, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(e.file, e.node), ": cluster server \"", *server,
                     "\" must be an http:// or https:// URL"));
  }
  config->server = std::string(absl::StripSuffix(*server, "/"));
  absl::StatusOr<std::string> ca = Pem(e, "certificate-authority");
  if (!ca.ok()) return ca.status();
  config->ca_pem = *std::move(ca);
  absl::StatusOr<std::string> sni = Str(e, "tls-server-name");
  if (!sni.ok()) return sni.status();
  config->tls_server_name = *std::move(sni);
  YAML::Node insecure = e.node["insecure-skip-tls-verify"];
  if (insecure && !insecure.IsNull()) {
    std::string v = insecure.as<std::string>();
    if (v != "true" && v != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(e.file, insecure),
                       ": insecure-skip-tls-verify must be true or false"));
    }
    config->insecure_skip_tls_verify = v == "true";
  }
  return absl::OkStatus();
}

absl::Status FillExec(const Entry& e, const YAML::Node& exec,
                      ClusterConfig* config) {
  Entry x{exec, e.file, e.dir};
  if (!exec.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(e.file, exec), ": exec must be a map"));
  }
  ExecPlugin plugin;
  absl::StatusOr<std::string> command = Str(x, "command");
  if (!command.ok()) return command.status();
  if (command->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(e.file, exec), ": exec.command is empty"));
  }
  // A relative path (not a bare name) is relative to the kubeconfig's dir.
  plugin.command =
      absl::StrContains(*command, '/') ? Resolve(e.dir, *command) : *command;
  absl::StatusOr<std::string> version = Str(x, "apiVersion");
  if (!version.ok()) return version.status();
  if (*version != "client.authentication.k8s.io/v1" &&
      *version != "client.authentication.k8s.io/v1beta1") {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(e.file, exec), ": exec.apiVersion \"", *version,
        "\" is not supported (client.authentication.k8s.io/v1 or v1beta1)"));
  }
  plugin.api_version = *version;
  absl::StatusOr<std::string> mode = Str(x, "interactiveMode");
  if (!mode.ok()) return mode.status();
  plugin.interactive_mode = *mode;
  absl::StatusOr<std::string> hint = Str(x, "installHint");
  if (!hint.ok()) return hint.status();
  plugin.install_hint = *hint;
  if (YAML::Node args = exec["args"]; args && !args.IsNull()) {
    if (!args.IsSequence()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(e.file, args), ": exec.args must be a list"));
    }
    for (const YAML::Node& a : args) plugin.args.push_back(a.as<std::string>());
  }
  if (YAML::Node env = exec["env"]; env && !env.IsNull()) {
    if (!env.IsSequence()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(e.file, env), ": exec.env must be a list"));
    }
    for (const YAML::Node& kv : env) {
      if (!kv.IsMap() || !kv["name"] || !kv["name"].IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(e.file, kv), ": exec.env entries need name and value"));
      }
      plugin.env.emplace_back(kv["name"].as<std::string>(),
                              kv["value"] && !kv["value"].IsNull()
                                  ? kv["value"].as<std::string>()
                                  : "");
    }
  }
  config->exec = std::move(plugin);
  return absl::OkStatus();
}

absl::Status FillUser(const Entry& e, ClusterConfig* config) {
  static const std::pair<const char*, const char*> kUnsupported[] = {
      {"auth-provider", "a legacy auth provider; use an exec plugin"},
      {"username", "basic authentication"},
      {"password", "basic authentication"},
      {"as", "impersonation"},
      {"as-groups", "impersonation"},
      {"as-uid", "impersonation"},
  };
  for (auto [key, what] : kUnsupported) {
    if (absl::Status s = RefuseUnsupported(e, key, what); !s.ok()) return s;
  }
  absl::StatusOr<std::string> cert = Pem(e, "client-certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = Pem(e, "client-key");
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(e.file, e.node),
        ": a client certificate needs its key (and a key its certificate)"));
  }
  config->client_cert_pem = *std::move(cert);
  config->client_key_pem = *std::move(key);
  absl::StatusOr<std::string> token = Str(e, "token");
  if (!token.ok()) return token.status();
  config->token = *std::move(token);
  absl::StatusOr<std::string> token_file = Str(e, "tokenFile");
  if (!token_file.ok()) return token_file.status();
  if (!token_file->empty()) {
    config->token_file = Resolve(e.dir, *token_file);
    if (!Exists(config->token_file)) {
      return absl::NotFoundError(
          absl::StrCat(Where(e.file, e.node["tokenFile"]), ": tokenFile ",
                       config->token_file, " does not exist"));
    }
  }
  if (YAML::Node exec = e.node["exec"]; exec && !exec.IsNull()) {
    return FillExec(e, exec, config);
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterConfig> FromMerged(const Merged& merged,
                                         const std::string& wanted) {
  std::string files = absl::StrJoin(merged.files, ":");
  std::string name = wanted.empty() ? merged.current_context : wanted;
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        files, ": no current-context is set; name a context (--kube-context)"));
  }
  auto ctx = merged.contexts.find(name);
  if (ctx == merged.contexts.end()) {
    return absl::NotFoundError(
        absl::StrCat(files, ": context \"", name, "\" not found"));
  }
  ClusterConfig config;
  config.context = name;
  try {
    absl::StatusOr<std::string> cluster = Str(ctx->second, "cluster");
    if (!cluster.ok()) return cluster.status();
    absl::StatusOr<std::string> user = Str(ctx->second, "user");
    if (!user.ok()) return user.status();
    absl::StatusOr<std::string> ns = Str(ctx->second, "namespace");
    if (!ns.ok()) return ns.status();
    config.namespace_name = *ns;
    auto c = merged.clusters.find(*cluster);
    if (c == merged.clusters.end()) {
      return absl::NotFoundError(absl::StrCat(
          Where(ctx->second.file, ctx->second.node), ": context \"", name,
          "\" names cluster \"", *cluster, "\", which no kubeconfig defines"));
    }
    if (absl::Status s = FillCluster(c->second, &config); !s.ok()) return s;
    if (!user->empty()) {
      auto u = merged.users.find(*user);
      if (u == merged.users.end()) {
        return absl::NotFoundError(absl::StrCat(
            Where(ctx->second.file, ctx->second.node), ": context \"", name,
            "\" names user \"", *user, "\", which no kubeconfig defines"));
      }
      if (absl::Status s = FillUser(u->second, &config); !s.ok()) return s;
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(files, ": ", e.what()));
  }
  return config;
}

}  // namespace

absl::StatusOr<ClusterConfig> LoadInClusterConfig(const std::string& root) {
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || host[0] == '\0' ||
      port[0] == '\0') {
    return absl::NotFoundError(
        "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT are not set)");
  }
  std::string dir = absl::StrCat(std::string(absl::StripSuffix(root, "/")),
                                 kServiceAccountDir);
  ClusterConfig config;
  config.context = "in-cluster";
  std::string h = host;
  if (absl::StrContains(h, ':')) h = absl::StrCat("[", h, "]");
  config.server = absl::StrCat("https://", h, ":", port);
  config.token_file = dir + "/token";
  if (!Exists(config.token_file)) {
    return absl::NotFoundError(
        absl::StrCat("in-cluster: service-account token ", config.token_file,
                     " does not exist (automountServiceAccountToken false?)"));
  }
  absl::StatusOr<std::string> ca = ReadFile(dir + "/ca.crt", "in-cluster CA");
  if (!ca.ok()) return ca.status();
  config.ca_pem = *std::move(ca);
  if (Exists(dir + "/namespace")) {
    absl::StatusOr<std::string> ns =
        ReadFile(dir + "/namespace", "in-cluster namespace");
    if (!ns.ok()) return ns.status();
    config.namespace_name = std::string(absl::StripAsciiWhitespace(*ns));
  }
  return config;
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const LoadOptions& options) {
  Merged merged;
  std::vector<std::string> looked_at;
  if (!options.kubeconfig_paths.empty()) {
    for (const std::string& path : options.kubeconfig_paths) {
      if (!Exists(path)) {
        return absl::NotFoundError(
            absl::StrCat("kubeconfig ", path, " does not exist"));
      }
      if (absl::Status s = MergeFile(path, &merged); !s.ok()) return s;
    }
  } else {
    std::vector<std::string> candidates;
    const char* env = getenv("KUBECONFIG");
    if (env != nullptr && env[0] != '\0') {
      for (absl::string_view p : absl::StrSplit(env, ':', absl::SkipEmpty())) {
        candidates.emplace_back(p);
      }
    } else {
      std::string home = HomeDir();
      if (!home.empty()) candidates.push_back(home + "/.kube/config");
    }
    for (const std::string& path : candidates) {
      looked_at.push_back(path);
      if (!Exists(path)) continue;  // client-go skips missing list entries
      if (absl::Status s = MergeFile(path, &merged); !s.ok()) return s;
    }
  }
  if (merged.files.empty()) {
    if (options.in_cluster_fallback) {
      absl::StatusOr<ClusterConfig> in_cluster =
          LoadInClusterConfig(options.in_cluster_root);
      if (in_cluster.ok() || !absl::IsNotFound(in_cluster.status())) {
        return in_cluster;
      }
      return absl::NotFoundError(absl::StrCat(
          "no kubeconfig (looked at ", absl::StrJoin(looked_at, ", "), ") and ",
          in_cluster.status().message()));
    }
    return absl::NotFoundError(absl::StrCat(
        "no kubeconfig (looked at ", absl::StrJoin(looked_at, ", "), ")"));
  }
  return FromMerged(merged, options.context);
}

}  // namespace kiln::kube
