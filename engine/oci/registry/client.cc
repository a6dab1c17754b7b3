#include "engine/oci/registry/client.h"

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/oci/registry/reference.h"
#include "nlohmann/json.hpp"

namespace kiln::oci::registry {
namespace {

constexpr absl::Duration kTokenTimeout = absl::Seconds(60);
constexpr size_t kMaxTokenResponseBytes = 1 << 20;
constexpr size_t kMaxShownErrorBytes = 300;

std::string Clip(absl::string_view s) {
  if (s.size() <= kMaxShownErrorBytes) return std::string(s);
  return absl::StrCat(s.substr(0, kMaxShownErrorBytes), "…");
}

// "scheme://host[:port]" of a URL, lowercased; "" when it has none.
std::string Origin(absl::string_view url) {
  size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return "";
  size_t end = url.find_first_of("/?#", sep + 3);
  return absl::AsciiStrToLower(url.substr(0, end));
}

// The registry's error codes and messages from an error body.
std::string RegistryErrors(absl::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body.begin(), body.end(), nullptr,
                                             /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return "";
  auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array()) return "";
  std::vector<std::string> parts;
  for (const nlohmann::json& e : *errors) {
    if (parts.size() == 3 || !e.is_object()) break;
    std::string code, message;
    if (auto c = e.find("code"); c != e.end() && c->is_string()) {
      code = c->get<std::string>();
    }
    if (auto m = e.find("message"); m != e.end() && m->is_string()) {
      message = m->get<std::string>();
    }
    parts.push_back(Clip(message.empty() ? code : code + ": " + message));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::Duration Backoff(const RetryPolicy& policy, int attempt,
                       absl::string_view retry_after) {
  int64_t seconds = 0;
  if (absl::SimpleAtoi(absl::StripAsciiWhitespace(retry_after), &seconds) &&
      seconds >= 0) {
    return std::min(absl::Seconds(seconds), policy.max_backoff);
  }
  absl::Duration d = policy.initial_backoff;
  for (int i = 1; i < attempt && d < policy.max_backoff; ++i) d *= 2;
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::min(d * jitter(rng), policy.max_backoff);
}

RegistryClient::RegistryClient(std::string registry, std::string base_url,
                               bool insecure, Credentials credentials,
                               RetryPolicy retry, HttpTransport* transport)
    : registry_(std::move(registry)),
      base_url_(std::move(base_url)),
      insecure_(insecure),
      credentials_(std::move(credentials)),
      retry_(retry),
      transport_(transport) {}

std::string RegistryClient::Url(absl::string_view path) const {
  return absl::StrCat(base_url_, path);
}

absl::StatusOr<std::string> RegistryClient::ResolveLocation(
    absl::string_view location) const {
  if (absl::StartsWith(location, "/") && !absl::StartsWith(location, "//")) {
    return Url(location);
  }
  if (Origin(location) == absl::AsciiStrToLower(base_url_)) {
    return std::string(location);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "registry ", registry_, ": upload location '",
      Clip(UrlForMessages(location)), "' is not on the registry itself"));
}

absl::Status RegistryClient::CheckRealm(absl::string_view realm) const {
  std::string origin = Origin(realm);
  if (absl::StartsWith(origin, "https://")) return absl::OkStatus();
  if (absl::StartsWith(origin, "http://")) {
    std::string host = origin.substr(7);
    if (IsLoopbackRegistry(host) ||
        (insecure_ && RegistryHost(host) ==
                          absl::AsciiStrToLower(RegistryHost(registry_)))) {
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "registry ", registry_, ": token realm '", Clip(UrlForMessages(realm)),
      "' is not HTTPS (plain HTTP is allowed only for loopback or the "
      "insecure registry itself)"));
}

absl::StatusOr<RegistryClient::Token> RegistryClient::FetchToken(
    const Challenge& challenge, const std::string& scope) {
  auto realm_it = challenge.params.find("realm");
  if (realm_it == challenge.params.end() || realm_it->second.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", registry_, ": bearer challenge without a realm"));
  }
  const std::string& realm = realm_it->second;
  if (absl::Status s = CheckRealm(realm); !s.ok()) return s;
  std::string query;
  if (auto s = challenge.params.find("service"); s != challenge.params.end()) {
    absl::StrAppend(&query, "service=", UrlEncode(s->second));
  }
  for (absl::string_view item : absl::StrSplit(scope, ' ', absl::SkipEmpty())) {
    absl::StrAppend(&query, query.empty() ? "" : "&",
                    "scope=", UrlEncode(item));
  }
  HttpRequest req;
  req.timeout = kTokenTimeout;
  req.max_body_bytes = kMaxTokenResponseBytes;
  if (!credentials_.identity_token.empty()) {
    req.method = "POST";
    req.url = realm;
    req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    req.body = absl::StrCat(query, query.empty() ? "" : "&",
                            "grant_type=refresh_token&client_id=kiln&"
                            "refresh_token=",
                            UrlEncode(credentials_.identity_token));
  } else {
    req.url = absl::StrCat(
        realm, realm.find('?') == std::string::npos ? "?" : "&", query);
    if (!credentials_.username.empty()) {
      req.headers.push_back(
          absl::StrCat("Authorization: ", BasicAuthorization(credentials_)));
    }
  }
  absl::StatusOr<HttpResponse> resp = transport_->Do(req);
  if (!resp.ok()) {
    return absl::Status(
        resp.status().code(),
        absl::StrCat("registry ", registry_,
                     ": token request: ", resp.status().message()));
  }
  if (resp->status != 200) {
    std::string errors = RegistryErrors(resp->body);
    std::string msg = absl::StrCat(
        "registry ", registry_, ": token service ", UrlForMessages(realm),
        " answered HTTP ", resp->status, errors.empty() ? "" : " (", errors,
        errors.empty() ? "" : ")",
        credentials_.empty() ? " — no credentials are configured for it"
                             : " — the configured credentials were refused");
    if (resp->status == 401 || resp->status == 403) {
      return absl::UnauthenticatedError(msg);
    }
    return absl::UnavailableError(msg);
  }
  nlohmann::json doc = nlohmann::json::parse(resp->body.begin(),
                                             resp->body.end(), nullptr, false);
  Token token;
  int64_t expires_in = 60;
  if (doc.is_object()) {
    for (const char* key : {"token", "access_token"}) {
      auto it = doc.find(key);
      if (it != doc.end() && it->is_string() &&
          !it->get<std::string>().empty()) {
        token.value = it->get<std::string>();
        break;
      }
    }
    auto e = doc.find("expires_in");
    if (e != doc.end() && e->is_number_integer()) {
      expires_in = std::clamp<int64_t>(e->get<int64_t>(), 0, 24 * 3600);
    }
  }
  bool printable = !token.value.empty();
  for (char c : token.value) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) printable = false;
  }
  if (!printable) {
    return absl::UnauthenticatedError(
        absl::StrCat("registry ", registry_, ": token service ",
                     UrlForMessages(realm), " gave no usable token"));
  }
  // Renew a little early: the clock of the token service is not ours.
  token.expires =
      absl::Now() + absl::Seconds(std::max<int64_t>(0, expires_in - 10));
  return token;
}

absl::Status RegistryClient::AnswerChallenge(const HttpResponse& response,
                                             const std::string& scope) {
  std::vector<Challenge> challenges =
      ParseChallenges(response.Header("www-authenticate"));
  for (const Challenge& c : challenges) {
    if (c.scheme != "bearer") continue;
    absl::StatusOr<Token> token = FetchToken(c, scope);
    if (!token.ok()) return token.status();
    MutexLock lock(&mu_);
    tokens_[scope] = *std::move(token);
    return absl::OkStatus();
  }
  for (const Challenge& c : challenges) {
    if (c.scheme != "basic") continue;
    if (credentials_.username.empty()) {
      return absl::UnauthenticatedError(
          absl::StrCat("registry ", registry_,
                       " requires credentials (basic auth) and none are "
                       "configured for it"));
    }
    MutexLock lock(&mu_);
    use_basic_ = true;
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "registry ", registry_,
      " answered HTTP 401 without a challenge kiln supports (Basic or "
      "Bearer)"));
}

std::string RegistryClient::Authorization(const std::string& scope) {
  MutexLock lock(&mu_);
  auto it = tokens_.find(scope);
  if (it != tokens_.end()) {
    if (absl::Now() < it->second.expires) {
      return absl::StrCat("Bearer ", it->second.value);
    }
    tokens_.erase(it);
  }
  if (use_basic_) return BasicAuthorization(credentials_);
  return "";
}

absl::StatusOr<HttpResponse> RegistryClient::Send(HttpRequest request,
                                                  const std::string& scope,
                                                  bool retryable) {
  bool answered = false;
  int attempt = 0;
  while (true) {
    ++attempt;
    HttpRequest r = request;
    std::string auth = Authorization(scope);
    if (!auth.empty()) r.headers.push_back("Authorization: " + auth);
    absl::StatusOr<HttpResponse> resp = transport_->Do(r);
    if (!resp.ok()) {
      bool transient = absl::IsUnavailable(resp.status()) ||
                       absl::IsDeadlineExceeded(resp.status());
      if (retryable && transient && attempt < retry_.max_attempts) {
        absl::SleepFor(Backoff(retry_, attempt, ""));
        continue;
      }
      return resp.status();
    }
    if (resp->status == 401 && !answered) {
      answered = true;
      --attempt;
      if (absl::Status s = AnswerChallenge(*resp, scope); !s.ok()) return s;
      continue;
    }
    if ((resp->status == 429 || resp->status >= 500) && retryable &&
        attempt < retry_.max_attempts) {
      absl::SleepFor(Backoff(retry_, attempt, resp->Header("retry-after")));
      continue;
    }
    return resp;
  }
}

absl::Status RegistryClient::ResponseError(const HttpResponse& response,
                                           absl::string_view repository,
                                           absl::string_view what) const {
  std::string errors = RegistryErrors(response.body);
  std::string msg =
      absl::StrCat("registry ", registry_, " repository ", repository, ": ",
                   what, ": HTTP ", response.status, errors.empty() ? "" : " (",
                   errors, errors.empty() ? "" : ")");
  long s = response.status;
  if (s == 401) {
    absl::StrAppend(&msg, credentials_.empty()
                              ? " — no credentials are configured for it"
                              : " — the configured credentials were refused");
    return absl::UnauthenticatedError(msg);
  }
  if (s == 403) return absl::PermissionDeniedError(msg);
  if (s == 404) return absl::NotFoundError(msg);
  if (s == 429) return absl::ResourceExhaustedError(msg);
  if (s >= 500) return absl::UnavailableError(msg);
  return absl::FailedPreconditionError(msg);
}

absl::Status RegistryClient::Annotate(const absl::Status& status,
                                      absl::string_view repository,
                                      absl::string_view what) const {
  return absl::Status(
      status.code(),
      absl::StrCat("registry ", registry_, " repository ", repository, ": ",
                   what, ": ", status.message()));
}

}  // namespace kiln::oci::registry
