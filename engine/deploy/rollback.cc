#include "engine/deploy/rollback.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/remove_tree.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/deploy/manifest_files.h"
#include "engine/deploy/promote.h"
#include "engine/deploy/record.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"

namespace kiln::deploy {
namespace {

constexpr int kMaxHistory = 10000;

std::string Describe(const store::DeploymentRecord& r) {
  return absl::StrCat(
      "deployment ", r.id, " (",
      r.run_id.empty() ? r.task : absl::StrCat(r.run_id, "/", r.task),
      ", manifests ", r.manifests_digest, ")");
}

// A fresh directory beneath `parent` (created 0700 if missing), removed
// with everything below it when this goes out of scope.
class ScratchDir {
 public:
  ~ScratchDir() {
    fd_ = cas::UniqueFd();
    if (!path_.empty()) RemoveTreeAt(AT_FDCWD, path_).IgnoreError();
  }
  absl::Status Create(const std::string& parent) {
    if (mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(
          absl::StrCat("mkdir ", parent, ": ", std::strerror(errno)));
    }
    std::string templ = parent + "/rollback-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      return absl::InternalError(
          absl::StrCat("mkdtemp in ", parent, ": ", std::strerror(errno)));
    }
    path_ = templ;
    int fd =
        open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return absl::InternalError(
          absl::StrCat("open ", path_, ": ", std::strerror(errno)));
    }
    fd_ = cas::UniqueFd(fd);
    return absl::OkStatus();
  }
  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

 private:
  std::string path_;
  cas::UniqueFd fd_;
};

absl::StatusOr<std::vector<Manifest>> ReadRecordedManifests(
    const cas::ArtifactStore& artifacts, const std::string& scratch_parent,
    const store::DeploymentRecord& from) {
  absl::StatusOr<cas::Digest> digest =
      cas::Digest::Parse(from.manifests_digest);
  if (!digest.ok()) {
    return absl::DataLossError(absl::StrCat(
        Describe(from), ": unreadable digest: ", digest.status().message()));
  }
  auto gone = [&from](const absl::Status& s) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the manifests of ", Describe(from), " are no longer in the store (",
        s.message(), "); deploy that version again with a run instead"));
  };
  absl::StatusOr<cas::Digest> archive = artifacts.ArchiveOf(*digest);
  if (!archive.ok()) {
    return absl::IsNotFound(archive.status()) ? gone(archive.status())
                                              : archive.status();
  }
  ScratchDir scratch;
  if (absl::Status s = scratch.Create(scratch_parent); !s.ok()) return s;
  absl::Status s =
      artifacts.UnstashAt(*digest, scratch.fd(), "in", scratch.path(), false);
  if (absl::IsNotFound(s)) return gone(s);
  if (!s.ok()) return s;
  return ReadManifests(scratch.fd(), "in");
}

}  // namespace

absl::StatusOr<store::DeploymentRecord> ChooseRollback(
    store::RunStore& runs, const RollbackRequest& request) {
  store::DeploymentFilter filter;
  filter.environment = request.environment;
  filter.namespace_name = request.namespace_name;
  filter.limit = kMaxHistory;
  absl::StatusOr<std::vector<store::DeploymentRecord>> history =
      runs.ListDeployments(filter);
  if (!history.ok()) return history.status();
  if (history->empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no deployment of environment \"", request.environment, "\"",
        request.namespace_name.empty()
            ? ""
            : absl::StrCat(" to namespace \"", request.namespace_name, "\""),
        " is recorded (`kiln env list` shows the recorded environments)"));
  }
  std::set<std::string> namespaces;
  for (const store::DeploymentRecord& r : *history) {
    namespaces.insert(r.namespace_name);
  }
  if (namespaces.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("environment \"", request.environment,
                     "\" was deployed to several namespaces (",
                     absl::StrJoin(namespaces, ", "), "): pass --namespace"));
  }
  const store::DeploymentRecord& latest = history->front();
  if (request.to != 0) {
    absl::StatusOr<store::DeploymentRecord> to = runs.GetDeployment(request.to);
    if (!to.ok()) return to.status();
    if (to->environment != latest.environment ||
        to->namespace_name != latest.namespace_name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "deployment ", to->id, " is of environment \"", to->environment,
          "\" (namespace ", to->namespace_name, "), not of \"",
          request.environment, "\" (namespace ", latest.namespace_name, ")"));
    }
    if (!to->succeeded) {
      return absl::FailedPreconditionError(
          absl::StrCat("deployment ", to->id, " failed (", to->reason,
                       "); roll back to a successful deployment"));
    }
    return to;
  }
  for (size_t i = 1; i < history->size(); ++i) {
    const store::DeploymentRecord& r = (*history)[i];
    if (!r.succeeded) continue;
    if (latest.succeeded && r.manifests_digest == latest.manifests_digest &&
        r.images == latest.images) {
      // The same manifests and images (a promotion pins other images into
      // the same manifests) as now: nothing to roll back to.
      continue;
    }
    return r;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "environment \"", request.environment,
      "\" has no successful deployment with other manifests before "
      "deployment ",
      latest.id, " to roll back to"));
}

absl::StatusOr<store::DeploymentRecord> Rollback(
    store::RunStore& runs, const cas::ArtifactStore& artifacts,
    const std::string& scratch_parent, const RollbackRequest& request,
    const LogFn& log, std::function<bool()> cancelled) {
  absl::StatusOr<store::DeploymentRecord> from = ChooseRollback(runs, request);
  if (!from.ok()) return from.status();
  absl::StatusOr<std::vector<Manifest>> manifests =
      ReadRecordedManifests(artifacts, scratch_parent, *from);
  if (!manifests.ok()) return manifests.status();
  // A promoted deployment applied other images than its artifact names
  // (docs/deploy.md, "Promotion"): the same ones are pinned again.
  if (ImagesOf(*manifests) != from->images) {
    absl::StatusOr<std::vector<PinnedImage>> pinned =
        PinImages(from->images, from->environment, &*manifests);
    if (!pinned.ok()) return pinned.status();
    log(absl::StrCat("images pinned as ", Describe(*from),
                     " applied them: ", pinned->size()));
  }
  log(absl::StrCat("rolling back environment ", from->environment,
                   " (namespace ", from->namespace_name, ") to ",
                   Describe(*from), ": ", manifests->size(), " objects"));

  kube::LoadOptions load;
  load.kubeconfig_paths = request.kubeconfig_paths;
  load.context = request.kube_context.value_or(from->kube_context);
  absl::StatusOr<kube::ClusterConfig> config = kube::LoadClusterConfig(load);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat("cluster: ", config.status().message()));
  }
  absl::StatusOr<std::unique_ptr<kube::Client>> client =
      kube::Client::Create(*config);
  if (!client.ok()) return client.status();
  // A rollback creates no namespace (a destroyed preview stays destroyed).
  absl::StatusOr<nlohmann::json> ns =
      (*client)->Get(kube::NamespacePath(from->namespace_name));
  if (absl::IsNotFound(ns.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "namespace \"", from->namespace_name, "\" of environment \"",
        from->environment,
        "\" no longer exists; a rollback applies only into an existing "
        "namespace (deploy again to recreate it)"));
  }
  if (!ns.ok()) {
    return absl::Status(ns.status().code(),
                        absl::StrCat("cluster: ", ns.status().message()));
  }

  DeployTarget target;
  target.environment = from->environment;
  target.namespace_name = from->namespace_name;
  target.create_namespace = false;
  target.force = request.force;
  target.wait = request.wait;
  target.timeout = request.timeout;
  Deployer deployer(client->get(), log, std::move(cancelled));
  DeploymentRecorder record(&runs, target, config->context, "", kRollbackTask,
                            from->manifests_digest, *manifests);
  record.set_rollback_to(from->id);
  absl::StatusOr<std::vector<AppliedObject>> applied =
      deployer.Apply(*std::move(manifests), target);
  absl::Status done = applied.status();
  if (done.ok() && target.wait) done = deployer.Wait(*applied, target);
  absl::StatusOr<int64_t> id = record.Finish(deployer.applied(), done, log);
  if (!done.ok()) {
    return absl::Status(
        done.code(),
        absl::StrCat(
            done.message(),
            id.ok() ? absl::StrCat(" (recorded as failed deployment ", *id, ")")
                    : ""));
  }
  if (!id.ok()) {
    return absl::Status(
        id.status().code(),
        absl::StrCat("rolled back, but not recorded: ", id.status().message()));
  }
  return runs.GetDeployment(*id);
}

}  // namespace kiln::deploy
