// RunStore: deployment records (the deployments, deployment_images and
// deployment_objects tables, schema 6). A record is written in one
// transaction with its images and objects, so it is whole or absent.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/store/run_store.h"
#include "engine/store/time_codec.h"

namespace kiln::store {
namespace {

constexpr int kDefaultDeploymentLimit = 100;
constexpr int kMaxDeploymentLimit = 10000;

constexpr char kDeploymentColumns[] =
    "id, environment, namespace, kube_context, run_id, task, "
    "manifests_digest, started_us, finished_us, succeeded, reason, "
    "rollback_to, force";

DeploymentRecord DeploymentFromRow(const Statement& row) {
  DeploymentRecord r;
  r.id = row.Int(0);
  r.environment = row.Text(1);
  r.namespace_name = row.Text(2);
  r.kube_context = row.Text(3);
  r.run_id = row.Text(4);
  r.task = row.Text(5);
  r.manifests_digest = row.Text(6);
  r.started = absl::FromUnixMicros(row.Int(7));
  r.finished = absl::FromUnixMicros(row.Int(8));
  r.succeeded = row.Int(9) != 0;
  r.reason = row.Text(10);
  r.rollback_to = row.Int(11);
  r.force = row.Int(12) != 0;
  return r;
}

}  // namespace

absl::StatusOr<int64_t> RunStore::RecordDeployment(
    const DeploymentRecord& record) {
  if (record.environment.empty() || record.namespace_name.empty() ||
      record.manifests_digest.empty()) {
    return absl::InvalidArgumentError(
        "RecordDeployment: a deployment needs an environment, a namespace "
        "and a manifests digest");
  }
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  {
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO deployments (environment, namespace,"
                     " kube_context, run_id, task, manifests_digest,"
                     " started_us, finished_us, succeeded, reason, rollback_to,"
                     " force) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                     " ?10, ?11, ?12)"));
    insert.BindText(1, record.environment)
        .BindText(2, record.namespace_name)
        .BindText(3, record.kube_context)
        .BindText(4, record.run_id)
        .BindText(5, record.task)
        .BindText(6, record.manifests_digest)
        .Bind(7, ToMicros(record.started))
        .Bind(8, ToMicros(record.finished))
        .Bind(9, record.succeeded ? 1 : 0)
        .BindText(10, record.reason)
        .Bind(11, record.rollback_to)
        .Bind(12, record.force ? 1 : 0);
    KILN_RETURN_IF_ERROR(insert.Run());
  }
  KILN_ASSIGN_OR_RETURN(int64_t id,
                        db_->QueryInt("SELECT last_insert_rowid()"));
  {
    KILN_ASSIGN_OR_RETURN(
        Statement image,
        db_->Prepare("INSERT INTO deployment_images (deployment_id, position,"
                     " image) VALUES (?1, ?2, ?3)"));
    for (size_t i = 0; i < record.images.size(); ++i) {
      image.Bind(1, id)
          .Bind(2, static_cast<int64_t>(i))
          .BindText(3, record.images[i]);
      KILN_RETURN_IF_ERROR(image.Run());
    }
  }
  {
    KILN_ASSIGN_OR_RETURN(
        Statement object,
        db_->Prepare("INSERT INTO deployment_objects (deployment_id, position,"
                     " api_version, kind, namespace, name, uid,"
                     " resource_version, generation)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    for (size_t i = 0; i < record.objects.size(); ++i) {
      const DeployedObject& o = record.objects[i];
      object.Bind(1, id)
          .Bind(2, static_cast<int64_t>(i))
          .BindText(3, o.api_version)
          .BindText(4, o.kind)
          .BindText(5, o.namespace_name)
          .BindText(6, o.name)
          .BindText(7, o.uid)
          .BindText(8, o.resource_version)
          .Bind(9, o.generation);
      KILN_RETURN_IF_ERROR(object.Run());
    }
  }
  KILN_RETURN_IF_ERROR(txn.Commit());
  return id;
}

absl::Status RunStore::LoadDeploymentDetails(DeploymentRecord* record) {
  {
    KILN_ASSIGN_OR_RETURN(
        Statement images,
        db_->Prepare("SELECT image FROM deployment_images"
                     " WHERE deployment_id = ?1 ORDER BY position"));
    images.Bind(1, record->id);
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool row, images.Step());
      if (!row) break;
      record->images.push_back(images.Text(0));
    }
  }
  KILN_ASSIGN_OR_RETURN(
      Statement objects,
      db_->Prepare("SELECT api_version, kind, namespace, name, uid,"
                   " resource_version, generation FROM deployment_objects"
                   " WHERE deployment_id = ?1 ORDER BY position"));
  objects.Bind(1, record->id);
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, objects.Step());
    if (!row) break;
    DeployedObject o{objects.Text(0), objects.Text(1), objects.Text(2),
                     objects.Text(3)};
    o.uid = objects.Text(4);
    o.resource_version = objects.Text(5);
    o.generation = objects.Int(6);
    record->objects.push_back(std::move(o));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeploymentRecord>> RunStore::ListDeployments(
    const DeploymentFilter& filter) {
  int limit = filter.limit <= 0 ? kDefaultDeploymentLimit
                                : std::min(filter.limit, kMaxDeploymentLimit);
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.BeginRead());
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat(
          "SELECT ", kDeploymentColumns,
          " FROM deployments WHERE (?1 = '' OR environment = ?1)"
          " AND (?2 = '' OR namespace = ?2) AND (?4 = '' OR run_id = ?4)"
          " ORDER BY id DESC LIMIT ?3")));
  stmt.BindText(1, filter.environment)
      .BindText(2, filter.namespace_name)
      .Bind(3, limit)
      .BindText(4, filter.run_id);
  std::vector<DeploymentRecord> out;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out.push_back(DeploymentFromRow(stmt));
  }
  stmt.Reset();
  for (DeploymentRecord& r : out) {
    KILN_RETURN_IF_ERROR(LoadDeploymentDetails(&r));
  }
  KILN_RETURN_IF_ERROR(txn.Commit());
  return out;
}

absl::StatusOr<std::vector<DeploymentRecord>> RunStore::LatestDeployments() {
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.BeginRead());
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat(
          "SELECT ", kDeploymentColumns,
          " FROM deployments WHERE id IN (SELECT MAX(id) FROM deployments"
          " GROUP BY environment, namespace) ORDER BY environment, "
          "namespace")));
  std::vector<DeploymentRecord> out;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out.push_back(DeploymentFromRow(stmt));
  }
  stmt.Reset();
  for (DeploymentRecord& r : out) {
    KILN_RETURN_IF_ERROR(LoadDeploymentDetails(&r));
  }
  KILN_RETURN_IF_ERROR(txn.Commit());
  return out;
}

absl::StatusOr<DeploymentRecord> RunStore::GetDeployment(int64_t id) {
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.BeginRead());
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("SELECT ", kDeploymentColumns,
                                " FROM deployments WHERE id = ?1")));
  stmt.Bind(1, id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no deployment ", id));
  DeploymentRecord r = DeploymentFromRow(stmt);
  stmt.Reset();
  KILN_RETURN_IF_ERROR(LoadDeploymentDetails(&r));
  KILN_RETURN_IF_ERROR(txn.Commit());
  return r;
}

absl::StatusOr<std::vector<std::string>> RunStore::RetainedDeploymentDigests(
    int per_environment) {
  if (per_environment <= 0) return std::vector<std::string>();
  kiln::MutexLock lock(&mu_);
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT DISTINCT manifests_digest FROM"
                   " (SELECT manifests_digest, ROW_NUMBER() OVER"
                   "  (PARTITION BY environment, namespace ORDER BY id DESC)"
                   "  AS newest FROM deployments) WHERE newest <= ?1"));
  stmt.Bind(1, per_environment);
  std::vector<std::string> out;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out.push_back(stmt.Text(0));
  }
  return out;
}

}  // namespace kiln::store
