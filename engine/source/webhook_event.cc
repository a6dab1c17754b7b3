#include "engine/source/webhook_event.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace kiln::source {
namespace {

using Json = nlohmann::json;

std::string Header(const Headers& headers, const std::string& name) {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json& Obj(const Json& j, const char* key) {
  static const Json* empty = new Json(Json::object());
  if (!j.is_object()) return *empty;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : *empty;
}

int64_t Int(const Json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

bool Bool(const Json& j, const char* key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

bool IsZero(const std::string& sha) {
  return !sha.empty() && sha.find_first_not_of('0') == std::string::npos;
}

// SHA-256 of the hex digest text: a fixed-size value to compare in
// constant time whatever the presented length.
void Fingerprint(absl::string_view text, unsigned char out[32]) {
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out);
}

bool ConstantTimeEqual(absl::string_view a, absl::string_view b) {
  unsigned char fa[32], fb[32];
  Fingerprint(a, fa);
  Fingerprint(b, fb);
  return CRYPTO_memcmp(fa, fb, 32) == 0;
}

void AddUrls(const Json& repo, WebhookEvent* e) {
  for (const char* key : {"clone_url", "ssh_url", "html_url", "git_http_url",
                          "git_ssh_url", "web_url", "url", "homepage"}) {
    std::string url = Str(repo, key);
    if (!url.empty()) e->repository_urls.push_back(url);
  }
  if (e->default_branch.empty())
    e->default_branch = Str(repo, "default_branch");
}

absl::Status Need(const std::string& value, const char* what) {
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook payload has no ", what));
  }
  return absl::OkStatus();
}

// refs/heads/X and refs/tags/X pushes (every provider's push payload has
// ref/before/after; deleting a branch sends after = 0...0).
absl::Status DecodePush(const Json& j, WebhookEvent* e) {
  const std::string full_ref = Str(j, "ref");
  absl::string_view ref = full_ref;
  std::string after = Str(j, "after");
  e->before = Str(j, "before");
  if (IsZero(e->before)) e->before.clear();
  if (absl::Status s = Need(full_ref, "ref"); !s.ok()) return s;
  const Json& head = Obj(j, "head_commit");
  e->message = Str(head, "message");
  if (e->message.empty() && j.contains("commits") && j["commits"].is_array() &&
      !j["commits"].empty()) {
    e->message = Str(j["commits"].back(), "message");  // GitLab: oldest first
  }
  bool deleted = Bool(j, "deleted") || IsZero(after) || after.empty();
  if (absl::ConsumePrefix(&ref, "refs/tags/")) {
    if (deleted) {
      e->ignored = "a tag was deleted";
      return absl::OkStatus();
    }
    e->kind = v1::TAG;
    e->branch = std::string(ref);
    e->fetch_ref = absl::StrCat("refs/tags/", ref);
    e->revision = after;
    return absl::OkStatus();
  }
  if (!absl::ConsumePrefix(&ref, "refs/heads/")) {
    e->ignored = absl::StrCat("a push to ", ref);
    return absl::OkStatus();
  }
  e->branch = std::string(ref);
  if (deleted) {
    // The branch is gone: the pipeline comes from the default branch.
    e->kind = v1::BRANCH_DELETED;
    if (absl::Status s = Need(e->default_branch, "repository default_branch");
        !s.ok()) {
      return s;
    }
    e->fetch_ref = absl::StrCat("refs/heads/", e->default_branch);
    return absl::OkStatus();
  }
  e->kind = v1::PUSH;
  e->fetch_ref = absl::StrCat("refs/heads/", ref);
  e->revision = after;
  return absl::OkStatus();
}

// GitHub and Gitea pull_request payloads (same shape; Gitea says
// "synchronized").
absl::Status DecodePullRequest(const Json& j, WebhookEvent* e) {
  std::string action = Str(j, "action");
  const Json& pr = Obj(j, "pull_request");
  e->pull_request = Int(pr, "number");
  if (e->pull_request == 0) e->pull_request = Int(j, "number");
  const Json& head = Obj(pr, "head");
  e->branch = Str(head, "ref");
  e->revision = Str(head, "sha");
  e->message = Str(pr, "title");
  if (action == "opened" || action == "reopened" || action == "synchronize" ||
      action == "synchronized") {
    e->kind = v1::PULL_REQUEST;
  } else if (action == "closed") {
    e->kind = v1::PULL_REQUEST_CLOSED;
  } else {
    e->ignored = absl::StrCat("pull request action '", action, "'");
    return absl::OkStatus();
  }
  if (e->pull_request <= 0) {
    return absl::InvalidArgumentError("webhook payload has no pull number");
  }
  e->fetch_ref = absl::StrCat("refs/pull/", e->pull_request, "/head");
  if (absl::Status s = Need(e->revision, "pull_request.head.sha"); !s.ok()) {
    return s;
  }
  return Need(e->branch, "pull_request.head.ref");
}

absl::Status DecodeMergeRequest(const Json& j, WebhookEvent* e) {
  const Json& mr = Obj(j, "object_attributes");
  std::string action = Str(mr, "action");
  e->pull_request = Int(mr, "iid");
  e->branch = Str(mr, "source_branch");
  const Json& last = Obj(mr, "last_commit");
  e->revision = Str(last, "id");
  e->message = Str(last, "message");
  if (action == "open" || action == "reopen" ||
      (action == "update" && !Str(mr, "oldrev").empty())) {
    e->kind = v1::PULL_REQUEST;
  } else if (action == "close" || action == "merge") {
    e->kind = v1::PULL_REQUEST_CLOSED;
  } else {
    e->ignored =
        absl::StrCat("merge request action '", action, "' (no new commits)");
    return absl::OkStatus();
  }
  if (e->pull_request <= 0) {
    return absl::InvalidArgumentError(
        "webhook payload has no object_attributes.iid");
  }
  e->fetch_ref = absl::StrCat("refs/merge-requests/", e->pull_request, "/head");
  if (absl::Status s = Need(e->revision, "object_attributes.last_commit.id");
      !s.ok()) {
    return s;
  }
  return Need(e->branch, "object_attributes.source_branch");
}

}  // namespace

const char* ProviderName(Provider provider) {
  switch (provider) {
    case Provider::kGitHub:
      return "github";
    case Provider::kGitLab:
      return "gitlab";
    case Provider::kGitea:
      return "gitea";
  }
  return "unknown";
}

absl::StatusOr<Provider> DetectProvider(const Headers& headers) {
  // Gitea also sends X-GitHub-Event: look for it first.
  if (headers.count("x-gitea-event") > 0) return Provider::kGitea;
  if (headers.count("x-gitlab-event") > 0) return Provider::kGitLab;
  if (headers.count("x-github-event") > 0) return Provider::kGitHub;
  return absl::InvalidArgumentError(
      "not a GitHub, GitLab or Gitea webhook (no X-GitHub-Event, "
      "X-Gitlab-Event or X-Gitea-Event header)");
}

bool HasSignature(Provider provider, const Headers& headers) {
  switch (provider) {
    case Provider::kGitHub:
      return absl::StartsWith(Header(headers, "x-hub-signature-256"),
                              "sha256=");
    case Provider::kGitea:
      return !Header(headers, "x-gitea-signature").empty();
    case Provider::kGitLab:
      return !Header(headers, "x-gitlab-token").empty();
  }
  return false;
}

std::string HmacSha256Hex(absl::string_view secret, absl::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac,
       &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

absl::Status VerifySignature(Provider provider, const Headers& headers,
                             absl::string_view body, absl::string_view secret) {
  std::string presented, expected;
  switch (provider) {
    case Provider::kGitHub:
      presented = Header(headers, "x-hub-signature-256");
      if (!absl::StartsWith(presented, "sha256=")) presented.clear();
      expected = absl::StrCat("sha256=", HmacSha256Hex(secret, body));
      break;
    case Provider::kGitea:
      presented = Header(headers, "x-gitea-signature");
      expected = HmacSha256Hex(secret, body);
      break;
    case Provider::kGitLab:
      presented = Header(headers, "x-gitlab-token");
      expected = std::string(secret);
      break;
  }
  if (presented.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the ", ProviderName(provider),
                     " webhook carries no signature or token"));
  }
  // Hex digests compare case-insensitively; a GitLab token exactly.
  if (provider != Provider::kGitLab) {
    presented = absl::AsciiStrToLower(presented);
  }
  if (!ConstantTimeEqual(presented, expected)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the ", ProviderName(provider),
        " webhook's signature does not match the configured secret"));
  }
  return absl::OkStatus();
}

absl::StatusOr<WebhookEvent> ParseWebhook(Provider provider,
                                          const Headers& headers,
                                          absl::string_view body) {
  WebhookEvent e;
  e.provider = provider;
  std::string event;
  switch (provider) {
    case Provider::kGitHub:
      event = Header(headers, "x-github-event");
      e.delivery = Header(headers, "x-github-delivery");
      break;
    case Provider::kGitea:
      event = Header(headers, "x-gitea-event");
      e.delivery = Header(headers, "x-gitea-delivery");
      break;
    case Provider::kGitLab:
      event = Header(headers, "x-gitlab-event");
      e.delivery = Header(headers, "idempotency-key");
      if (e.delivery.empty())
        e.delivery = Header(headers, "x-gitlab-event-uuid");
      break;
  }
  if (e.delivery.empty() || e.delivery.size() > 200) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", ProviderName(provider),
                     " webhook has no delivery id (or one over 200 bytes)"));
  }
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("webhook body is not a JSON object");
  }
  const Json& repo =
      provider == Provider::kGitLab ? Obj(j, "project") : Obj(j, "repository");
  AddUrls(repo, &e);
  if (provider == Provider::kGitLab) AddUrls(Obj(j, "repository"), &e);
  if (e.repository_urls.empty()) {
    return absl::InvalidArgumentError("webhook payload names no repository");
  }
  absl::Status s;
  if (provider == Provider::kGitLab) {
    std::string kind = Str(j, "object_kind");
    if (kind == "push" || kind == "tag_push") {
      s = DecodePush(j, &e);
    } else if (kind == "merge_request") {
      s = DecodeMergeRequest(j, &e);
    } else {
      e.ignored = absl::StrCat("GitLab event '", event, "'");
    }
  } else if (event == "push") {
    s = DecodePush(j, &e);
  } else if (event == "pull_request") {
    s = DecodePullRequest(j, &e);
  } else if (event == "delete" && provider == Provider::kGitea &&
             Str(j, "ref_type") == "branch") {
    // Gitea reports a deleted branch as a delete event.
    e.branch = Str(j, "ref");
    e.kind = v1::BRANCH_DELETED;
    s = Need(e.default_branch, "repository default_branch");
    e.fetch_ref = absl::StrCat("refs/heads/", e.default_branch);
  } else {
    // ping, create (followed by a push), delete on GitHub (its push with
    // deleted: true is the one handled), and everything else.
    e.ignored = absl::StrCat(ProviderName(provider), " event '", event, "'");
  }
  if (!s.ok()) return s;
  if (e.ignored.empty() && e.kind == v1::PUSH && IsZero(e.revision)) {
    return absl::InvalidArgumentError("webhook push has no new revision");
  }
  return e;
}

std::string NormalizeRepositoryUrl(absl::string_view url) {
  std::string s = absl::AsciiStrToLower(url);
  absl::string_view v = s;
  if (size_t scheme = v.find("://"); scheme != absl::string_view::npos) {
    v.remove_prefix(scheme + 3);
    size_t slash = v.find('/');
    size_t at = v.substr(0, slash).rfind('@');
    if (at != absl::string_view::npos) v.remove_prefix(at + 1);
  } else if (size_t colon = v.find(':');
             colon != absl::string_view::npos &&
             v.substr(0, colon).find('/') == absl::string_view::npos) {
    absl::string_view host = v.substr(0, colon);
    if (size_t at = host.rfind('@'); at != absl::string_view::npos) {
      host.remove_prefix(at + 1);
    }
    std::string out = absl::StrCat(host, "/", v.substr(colon + 1));
    absl::string_view o = out;
    while (absl::ConsumeSuffix(&o, "/") || absl::ConsumeSuffix(&o, ".git")) {
    }
    return std::string(o);
  }
  while (absl::ConsumeSuffix(&v, "/") || absl::ConsumeSuffix(&v, ".git")) {
  }
  return std::string(v);
}

}  // namespace kiln::source
