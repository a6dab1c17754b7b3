#include "engine/deploy/promote.h"

#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kiln::deploy {
namespace {

using nlohmann::json;

// At most this many deployments of one environment by one run are looked
// at for its newest successful one (a run deploys an environment a handful
// of times at most: retries).
constexpr int kMaxDeploymentsPerRun = 1000;

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

// What `from` recorded for one repository.
struct Recorded {
  std::set<std::string> digests;
  std::vector<std::string> by_tag;  // images without a digest
};

std::string Describe(const store::DeploymentRecord& r) {
  return absl::StrCat("deployment ", r.id, " (task ", r.task, ")");
}

}  // namespace

std::string RepositoryOf(absl::string_view image) {
  size_t at = image.find('@');
  if (at != absl::string_view::npos) image = image.substr(0, at);
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  if (colon != absl::string_view::npos &&
      (slash == absl::string_view::npos || colon > slash)) {
    image = image.substr(0, colon);
  }
  return std::string(image);
}

std::string DigestOf(absl::string_view image) {
  size_t at = image.find('@');
  if (at == absl::string_view::npos) return "";
  absl::string_view d = image.substr(at + 1);
  for (const auto& [algo, hex_len] :
       {std::make_pair(absl::string_view("sha256:"), size_t{64}),
        std::make_pair(absl::string_view("sha512:"), size_t{128})}) {
    if (d.size() == algo.size() + hex_len && d.substr(0, algo.size()) == algo &&
        IsHex(d.substr(algo.size()))) {
      return std::string(d);
    }
  }
  return "";
}

absl::StatusOr<store::DeploymentRecord> FindPromoted(
    store::RunStore* runs, const PromotionSource& source) {
  if (runs == nullptr) {
    return absl::FailedPreconditionError(
        "promotion needs the run store's deployment records (this engine "
        "has no run store)");
  }
  store::DeploymentFilter filter;
  filter.environment = source.from;
  filter.run_id = source.run;
  filter.limit = source.same_run ? 1 : kMaxDeploymentsPerRun;
  absl::StatusOr<std::vector<store::DeploymentRecord>> found =
      runs->ListDeployments(filter);
  if (!found.ok()) return found.status();
  const std::string env = absl::StrCat("environment '", source.from, "'");
  if (source.same_run) {
    if (found->empty() && source.confirmed > 0) {
      absl::StatusOr<store::DeploymentRecord> live =
          runs->GetDeployment(source.confirmed);
      if (!live.ok()) return live.status();
      if (live->environment != source.from || !live->succeeded) {
        return absl::FailedPreconditionError(absl::StrCat(
            "deployment ", source.confirmed, " that this run found live is ",
            live->succeeded ? "not of " : "a failed one of ", env));
      }
      return *std::move(live);
    }
    if (found->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this run has not deployed ", env,
          ": nothing to promote (the deploy to it must succeed first)"));
    }
    const store::DeploymentRecord& newest = found->front();
    if (!newest.succeeded) {
      return absl::FailedPreconditionError(
          absl::StrCat("the newest deployment of ", env, " by this run, ",
                       Describe(newest), ", failed: ", newest.reason,
                       "; a failed deployment is never promoted"));
    }
    return newest;
  }
  for (const store::DeploymentRecord& r : *found) {
    if (r.succeeded) return r;
  }
  if (found->empty()) {
    absl::StatusOr<v1::Run> run = runs->GetRun(source.run);
    if (absl::IsNotFound(run.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("no run '", source.run, "' in the run store"));
    }
    if (!run.ok()) return run.status();
    return absl::FailedPreconditionError(
        absl::StrCat("run ", source.run, " has no deployment of ", env,
                     ": nothing to promote"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "run ", source.run, " has no successful deployment of ", env,
      " (its newest, ", Describe(found->front()), ", failed: ",
      found->front().reason, "); a failed deployment is never promoted"));
}

absl::StatusOr<std::vector<PinnedImage>> PinImages(
    const std::vector<std::string>& from_images, const std::string& from,
    std::vector<Manifest>* manifests) {
  std::map<std::string, Recorded> recorded;
  for (const std::string& image : from_images) {
    Recorded& r = recorded[RepositoryOf(image)];
    std::string digest = DigestOf(image);
    if (digest.empty()) {
      r.by_tag.push_back(image);
    } else {
      r.digests.insert(digest);
    }
  }
  std::set<std::pair<std::string, std::string>> done;
  for (Manifest& m : *manifests) {
    json* spec = MutablePodSpecOf(&m.object);
    if (spec == nullptr) continue;
    for (const char* list : kContainerLists) {
      if (!spec->contains(list) || !(*spec)[list].is_array()) continue;
      for (json& c : (*spec)[list]) {
        if (!c.is_object() || !c.contains("image")) continue;
        const std::string where =
            absl::StrCat(m.source, ": ", m.kind, " \"", m.name, "\" ", list,
                         " \"", c.value("name", std::string("?")), "\"");
        if (!c["image"].is_string()) {
          return absl::FailedPreconditionError(
              absl::StrCat(where, ": image is not a string"));
        }
        const std::string image = c["image"].get<std::string>();
        const std::string repo = RepositoryOf(image);
        auto it = recorded.find(repo);
        if (it == recorded.end() ||
            (it->second.digests.empty() && it->second.by_tag.empty())) {
          std::vector<std::string> repos;
          for (const auto& [name, r] : recorded) repos.push_back(name);
          return absl::FailedPreconditionError(absl::StrCat(
              where, ": image ", image, ": environment '", from,
              "' did not deploy repository ", repo, " (it deployed: ",
              repos.empty() ? "no images" : absl::StrJoin(repos, ", "),
              "); a promotion never passes an image through"));
        }
        const Recorded& r = it->second;
        if (r.digests.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              where, ": image ", image, ": environment '", from,
              "' deployed repository ", repo, " by tag only (",
              absl::StrJoin(r.by_tag, ", "),
              "): there is no digest to promote (deploy it by digest)"));
        }
        if (r.digests.size() > 1) {
          return absl::FailedPreconditionError(absl::StrCat(
              where, ": image ", image, ": environment '", from,
              "' deployed repository ", repo, " with different digests (",
              absl::StrJoin(r.digests, ", "),
              "): which one to promote is "
              "ambiguous"));
        }
        std::string pinned = absl::StrCat(repo, "@", *r.digests.begin());
        done.emplace(image, pinned);
        c["image"] = pinned;
      }
    }
  }
  std::vector<PinnedImage> out;
  for (const auto& [original, pinned] : done) {
    out.push_back(PinnedImage{original, pinned});
  }
  return out;
}

absl::Status Promote(store::RunStore* runs, const PromotionSource& source,
                     std::vector<Manifest>* manifests, const LogFn& log) {
  absl::StatusOr<store::DeploymentRecord> from = FindPromoted(runs, source);
  if (!from.ok()) return from.status();
  absl::StatusOr<std::vector<PinnedImage>> pinned =
      PinImages(from->images, source.from, manifests);
  if (!pinned.ok()) {
    return absl::Status(pinned.status().code(),
                        absl::StrCat("promote from ", Describe(*from), ": ",
                                     pinned.status().message()));
  }
  if (pinned->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "promote: the manifests name no container image, so there is "
        "nothing to promote from environment '",
        source.from, "'"));
  }
  std::set<std::string> said;
  for (const PinnedImage& p : *pinned) {
    if (!said.insert(p.pinned).second) continue;
    log(absl::StrCat("promoted ", p.pinned, " from ", source.from,
                     " (deployment ", from->id, ", run ", from->run_id, ")"));
  }
  return absl::OkStatus();
}

}  // namespace kiln::deploy
