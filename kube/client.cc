#include "kube/client.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "kube/credentials.h"
#include "kube/transport.h"

namespace kiln::kube {
namespace {

constexpr char kReasonPayload[] = "kiln.dev/kube-reason";
constexpr int kListPageSize = 500;
// A watch connection is ended by the server after timeoutSeconds; the
// client's own bound is this much later.
constexpr absl::Duration kWatchSlack = absl::Seconds(15);

std::string DefaultReason(long code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return absl::StrCat("HTTP", code);
  }
}

absl::StatusCode CodeFor(long http, const std::string& reason) {
  switch (http) {
    case 400:
    case 405:
    case 406:
    case 413:
    case 415:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                       : absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kFailedPrecondition;
    case 429:
      return absl::StatusCode::kUnavailable;
    default:
      break;
  }
  if (http >= 500) return absl::StatusCode::kUnavailable;
  return absl::StatusCode::kUnknown;
}

absl::Status WithReason(absl::StatusCode code, const std::string& message,
                        const std::string& reason) {
  absl::Status s(code, message);
  s.SetPayload(kReasonPayload, absl::Cord(reason));
  return s;
}

// An error from an API Status (or any non-2xx body):
// "<VERB> <path>: <reason>: <message>".
absl::Status ApiError(const std::string& method, const std::string& path,
                      long http, const std::string& body) {
  std::string reason, message;
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_discarded() && doc.is_object() &&
      doc.value("kind", "") == "Status") {
    if (doc.contains("reason") && doc["reason"].is_string()) {
      reason = doc["reason"].get<std::string>();
    }
    if (doc.contains("message") && doc["message"].is_string()) {
      message = doc["message"].get<std::string>();
    }
  }
  if (reason.empty()) reason = DefaultReason(http);
  if (http == 410 && reason != "Expired" && reason != "Gone") reason = "Gone";
  if (message.empty()) {
    message = std::string(absl::StripAsciiWhitespace(body.substr(0, 200)));
    if (message.empty()) message = absl::StrCat("HTTP ", http);
  }
  return WithReason(CodeFor(http, reason),
                    absl::StrCat(method, " ", UrlWithoutQuery(path), ": ",
                                 reason, ": ", message),
                    reason);
}

// RFC 3986 query escaping.
std::string Escape(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Appends "k=v" to `path`'s query.
void AddQuery(std::string* path, absl::string_view key,
              absl::string_view value) {
  absl::StrAppend(path, absl::StrContains(*path, '?') ? "&" : "?", key, "=",
                  Escape(value));
}

// object[key] when `object` is an object holding `key`, else null.
const nlohmann::json* Member(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// object[key] as a string ("" when absent or not a string).
std::string StringMember(const nlohmann::json* object, const char* key) {
  if (object == nullptr) return "";
  const nlohmann::json* v = Member(*object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

std::string ObjectKey(const nlohmann::json& object) {
  const nlohmann::json* meta = Member(object, "metadata");
  return absl::StrCat(StringMember(meta, "namespace"), "/",
                      StringMember(meta, "name"));
}

std::string ObjectVersion(const nlohmann::json& object) {
  return StringMember(Member(object, "metadata"), "resourceVersion");
}

// Splits a byte stream into lines for `on_line`; false stops.
class LineSplitter {
 public:
  explicit LineSplitter(std::function<bool(absl::string_view)> on_line)
      : on_line_(std::move(on_line)) {}
  bool Feed(absl::string_view chunk) {
    pending_.append(chunk.data(), chunk.size());
    size_t start = 0;
    size_t nl;
    bool go = true;
    while (go && (nl = pending_.find('\n', start)) != std::string::npos) {
      go = on_line_(absl::string_view(pending_).substr(start, nl - start));
      start = nl + 1;
    }
    pending_.erase(0, start);
    return go;
  }
  // The last line when the stream ended without a newline.
  bool Finish() {
    if (pending_.empty()) return true;
    std::string last;
    last.swap(pending_);
    return on_line_(last);
  }

 private:
  std::function<bool(absl::string_view)> on_line_;
  std::string pending_;
};

}  // namespace

std::string ApiReason(const absl::Status& status) {
  auto reason = status.GetPayload(kReasonPayload);
  return reason.has_value() ? std::string(*reason) : "";
}

void CancelFlag::Cancel() {
  MutexLock lock(&mu_);
  cancelled_.store(true, std::memory_order_release);
  for (auto& [id, wake] : wakers_) wake();
}

int CancelFlag::AddWaker(std::function<void()> wake) {
  MutexLock lock(&mu_);
  int id = next_waker_++;
  wakers_.emplace(id, std::move(wake));
  return id;
}

void CancelFlag::RemoveWaker(int id) {
  MutexLock lock(&mu_);
  wakers_.erase(id);
}

bool CancelFlag::WaitFor(absl::Duration d) {
  MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline([this] { return cancelled(); }, absl::Now() + d);
}

// The HTTP machinery behind Client: authentication, retries and errors.
class Client::Impl {
 public:
  Impl(const ClusterConfig& config, ClientOptions options)
      : options_(std::move(options)),
        transport_(TlsSettings{config.ca_pem, config.insecure_skip_tls_verify,
                               config.tls_server_name},
                   options_.connect_timeout, options_.user_agent),
        credentials_(config, options_.exec_plugin_timeout),
        base_(config.server) {}

  struct Call {
    std::string method = "GET";
    std::string path;  // with query
    std::string body;
    std::string content_type;
    absl::Duration timeout = absl::InfiniteDuration();  // "" = request_timeout
    bool use_request_timeout = true;
    absl::Duration stall_timeout = absl::InfiniteDuration();
    std::function<bool(absl::string_view)> sink;  // 2xx bodies
    CancelFlag* cancel = nullptr;
  };

  // Sends with authentication and retries; returns the final response
  // (any status) or a transport error.
  absl::StatusOr<TransportResponse> Send(const Call& call) {
    bool reauthenticated = false;
    bool delivered = false;
    std::function<bool(absl::string_view)> sink;
    if (call.sink) {
      sink = [&](absl::string_view chunk) {
        delivered = true;
        return call.sink(chunk);
      };
    }
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<Credentials> creds = credentials_.Get();
      if (!creds.ok()) {
        return absl::Status(
            creds.status().code(),
            absl::StrCat(call.method, " ", UrlWithoutQuery(call.path),
                         ": credentials: ", creds.status().message()));
      }
      TransportRequest req;
      req.method = call.method;
      req.url = base_ + call.path;
      req.headers.push_back("Accept: application/json");
      if (!call.content_type.empty()) {
        req.headers.push_back("Content-Type: " + call.content_type);
      }
      if (!creds->token.empty()) {
        req.headers.push_back("Authorization: Bearer " + creds->token);
      }
      req.client_cert_pem = creds->cert_pem;
      req.client_key_pem = creds->key_pem;
      req.body = call.body;
      req.timeout =
          call.use_request_timeout ? options_.request_timeout : call.timeout;
      req.stall_timeout = call.stall_timeout;
      req.max_body_bytes = options_.max_response_bytes;
      req.sink = sink;
      req.cancel = call.cancel;
      absl::StatusOr<TransportResponse> r = transport_.Do(req);
      if (!r.ok()) {
        if (absl::IsUnavailable(r.status()) && !delivered &&
            attempt < options_.max_retries &&
            !Wait(Backoff(attempt), call.cancel)) {
          continue;
        }
        if (call.cancel != nullptr && call.cancel->cancelled()) {
          TransportResponse cancelled;
          cancelled.cancelled = true;
          return cancelled;
        }
        return r.status();
      }
      if (r->cancelled || r->stopped) return r;
      if (r->status == 401 && !reauthenticated && credentials_.Invalidate()) {
        reauthenticated = true;  // a rotated token or expired credential
        --attempt;
        continue;
      }
      if ((r->status == 429 || r->status >= 500) &&
          attempt < options_.max_retries) {
        absl::Duration delay = Backoff(attempt);
        int64_t seconds = 0;
        if (absl::SimpleAtoi(r->Header("retry-after"), &seconds) &&
            seconds >= 0) {
          delay = std::min(absl::Seconds(seconds), options_.max_backoff);
        }
        if (Wait(delay, call.cancel)) {
          TransportResponse cancelled;
          cancelled.cancelled = true;
          return cancelled;
        }
        continue;
      }
      return r;
    }
  }

  // A JSON request answering a JSON object (errors mapped).
  absl::StatusOr<nlohmann::json> Json(const Call& call) {
    absl::StatusOr<TransportResponse> r = Send(call);
    if (!r.ok()) return r.status();
    if (r->status < 200 || r->status >= 300) {
      return ApiError(call.method, call.path, r->status, r->body);
    }
    nlohmann::json doc = nlohmann::json::parse(r->body, nullptr, false);
    if (doc.is_discarded()) {
      return absl::InternalError(absl::StrCat(call.method, " ",
                                              UrlWithoutQuery(call.path),
                                              ": the response is not JSON"));
    }
    return doc;
  }

  absl::Duration Backoff(int attempt) const {
    absl::Duration d = options_.initial_backoff;
    for (int i = 0; i < attempt && d < options_.max_backoff; ++i) d *= 2;
    return std::min(d, options_.max_backoff);
  }

  // Sleeps `d`; true when `cancel` fired.
  static bool Wait(absl::Duration d, CancelFlag* cancel) {
    if (cancel != nullptr) return cancel->WaitFor(d);
    absl::SleepFor(d);
    return false;
  }

  const ClientOptions& options() const { return options_; }
  int64_t sent() const { return transport_.requests_sent(); }

 private:
  const ClientOptions options_;
  Transport transport_;
  CredentialSource credentials_;
  const std::string base_;
};

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClusterConfig config,
                                                       ClientOptions options) {
  std::string where =
      absl::StrCat("cluster of context \"", config.context, "\"");
  if (!absl::StartsWith(config.server, "https://") &&
      !absl::StartsWith(config.server, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": server \"", config.server, "\" is not an http(s) URL"));
  }
  config.server = std::string(absl::StripSuffix(config.server, "/"));
  auto pem = [&](const std::string& v, const char* what) -> absl::Status {
    if (!v.empty() && !absl::StrContains(v, "-----BEGIN ")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", what, " is not PEM"));
    }
    return absl::OkStatus();
  };
  for (auto [v, what] : {std::pair<const std::string*, const char*>{
                             &config.ca_pem, "certificate authority"},
                         {&config.client_cert_pem, "client certificate"},
                         {&config.client_key_pem, "client key"}}) {
    if (absl::Status s = pem(*v, what); !s.ok()) return s;
  }
  if (config.client_cert_pem.empty() != config.client_key_pem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": a client certificate needs its key and a key its certificate"));
  }
  if (options.max_retries < 0) options.max_retries = 0;
  auto impl = std::make_unique<Impl>(config, std::move(options));
  return std::unique_ptr<Client>(
      new Client(std::move(config), std::move(impl)));
}

Client::Client(ClusterConfig config, std::unique_ptr<Impl> impl)
    : config_(std::move(config)), impl_(std::move(impl)) {}

Client::~Client() = default;

int64_t Client::request_count() const { return impl_->sent(); }

absl::StatusOr<nlohmann::json> Client::Get(const std::string& path) {
  Impl::Call call;
  call.path = path;
  return impl_->Json(call);
}

absl::StatusOr<nlohmann::json> Client::List(const std::string& collection,
                                            const ListOptions& options) {
  std::string base = collection;
  if (!options.label_selector.empty()) {
    AddQuery(&base, "labelSelector", options.label_selector);
  }
  if (!options.field_selector.empty()) {
    AddQuery(&base, "fieldSelector", options.field_selector);
  }
  bool paged = true;
  for (;;) {
    nlohmann::json all;
    std::string next;
    bool restart = false;
    do {
      Impl::Call call;
      call.path = base;
      if (paged) AddQuery(&call.path, "limit", absl::StrCat(kListPageSize));
      if (!next.empty()) AddQuery(&call.path, "continue", next);
      absl::StatusOr<nlohmann::json> page = impl_->Json(call);
      if (!page.ok()) {
        // An expired continue token: list again in one piece.
        if (!next.empty() && ApiReason(page.status()) == "Expired") {
          paged = false;
          restart = true;
          break;
        }
        return page.status();
      }
      if (!page->is_object()) {
        return absl::InternalError(absl::StrCat(
            "GET ", collection, ": the list response is not an object"));
      }
      nlohmann::json items = nlohmann::json::array();
      if (const nlohmann::json* got = Member(*page, "items");
          got != nullptr && got->is_array()) {
        items = *got;
      }
      next = StringMember(Member(*page, "metadata"), "continue");
      if (all.is_null()) {
        all = *std::move(page);
        all["items"] = nlohmann::json::array();
      } else if (const nlohmann::json* meta = Member(*page, "metadata")) {
        all["metadata"] = *meta;
      }
      for (auto& item : items) all["items"].push_back(std::move(item));
    } while (!next.empty());
    if (restart) continue;
    if (all.contains("metadata") && all["metadata"].is_object()) {
      all["metadata"].erase("continue");
      all["metadata"].erase("remainingItemCount");
    }
    return all;
  }
}

absl::StatusOr<nlohmann::json> Client::Create(const std::string& collection,
                                              const nlohmann::json& object) {
  Impl::Call call;
  call.method = "POST";
  call.path = collection;
  call.body = object.dump();
  call.content_type = "application/json";
  return impl_->Json(call);
}

absl::StatusOr<nlohmann::json> Client::Replace(const std::string& path,
                                               const nlohmann::json& object) {
  Impl::Call call;
  call.method = "PUT";
  call.path = path;
  call.body = object.dump();
  call.content_type = "application/json";
  return impl_->Json(call);
}

absl::StatusOr<nlohmann::json> Client::Patch(const std::string& path,
                                             const nlohmann::json& body,
                                             PatchType type,
                                             const PatchOptions& options) {
  Impl::Call call;
  call.method = "PATCH";
  call.path = path;
  call.body = body.dump();
  switch (type) {
    case PatchType::kMerge:
      call.content_type = "application/merge-patch+json";
      break;
    case PatchType::kStrategicMerge:
      call.content_type = "application/strategic-merge-patch+json";
      break;
    case PatchType::kJson:
      call.content_type = "application/json-patch+json";
      break;
    case PatchType::kApply:
      // JSON is YAML; server-side apply needs a field manager.
      if (options.field_manager.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "PATCH ", path, ": server-side apply needs a field_manager"));
      }
      call.content_type = "application/apply-patch+yaml";
      break;
  }
  if (!options.field_manager.empty()) {
    AddQuery(&call.path, "fieldManager", options.field_manager);
  }
  if (options.force) AddQuery(&call.path, "force", "true");
  return impl_->Json(call);
}

absl::StatusOr<nlohmann::json> Client::Apply(const std::string& path,
                                             const nlohmann::json& object,
                                             const ApplyOptions& options) {
  PatchOptions patch;
  patch.field_manager = options.field_manager;
  patch.force = options.force;
  return Patch(path, object, PatchType::kApply, patch);
}

absl::Status Client::Delete(const std::string& path,
                            const DeleteOptions& options) {
  Impl::Call call;
  call.method = "DELETE";
  call.path = path;
  nlohmann::json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (options.grace_period_seconds.has_value()) {
    body["gracePeriodSeconds"] = *options.grace_period_seconds;
  }
  if (!options.propagation_policy.empty()) {
    body["propagationPolicy"] = options.propagation_policy;
  }
  call.body = body.dump();
  call.content_type = "application/json";
  // The body (the object being deleted, or a Status) is not needed.
  absl::StatusOr<TransportResponse> r = impl_->Send(call);
  if (!r.ok()) return r.status();
  if (r->status < 200 || r->status >= 300) {
    return ApiError(call.method, call.path, r->status, r->body);
  }
  return absl::OkStatus();
}

absl::Status Client::Watch(
    const std::string& collection, const WatchOptions& options,
    const std::function<bool(const WatchEvent&)>& on_event,
    CancelFlag* cancel) {
  std::map<std::string, nlohmann::json> known;  // key -> last seen object
  std::string version = options.resource_version;
  bool user_stopped = false;
  auto emit = [&](const std::string& type, const nlohmann::json& object) {
    WatchEvent event;
    event.type = type;
    event.object = object;
    if (!on_event(event)) user_stopped = true;
    return !user_stopped;
  };
  ListOptions list_options;
  list_options.label_selector = options.label_selector;
  list_options.field_selector = options.field_selector;

  // Lists and emits the difference from `known` (all ADDED the first time).
  auto relist = [&]() -> absl::Status {
    absl::StatusOr<nlohmann::json> list = List(collection, list_options);
    if (!list.ok()) return list.status();
    std::map<std::string, nlohmann::json> now;
    if (const nlohmann::json* items = Member(*list, "items");
        items != nullptr && items->is_array()) {
      for (const nlohmann::json& item : *items) now[ObjectKey(item)] = item;
    }
    for (const auto& [key, object] : now) {
      auto old = known.find(key);
      if (old == known.end()) {
        if (!emit("ADDED", object)) return absl::OkStatus();
      } else if (ObjectVersion(old->second) != ObjectVersion(object)) {
        if (!emit("MODIFIED", object)) return absl::OkStatus();
      }
    }
    for (const auto& [key, object] : known) {
      if (now.count(key) == 0 && !emit("DELETED", object)) {
        return absl::OkStatus();
      }
    }
    known = std::move(now);
    version = StringMember(Member(*list, "metadata"), "resourceVersion");
    return absl::OkStatus();
  };

  if (version.empty()) {
    if (absl::Status s = relist(); !s.ok() || user_stopped) return s;
  }
  int failures = 0;
  absl::Status last_error;
  while (cancel == nullptr || !cancel->cancelled()) {
    Impl::Call call;
    call.path = collection;
    AddQuery(&call.path, "watch", "1");
    if (!version.empty()) AddQuery(&call.path, "resourceVersion", version);
    if (options.allow_bookmarks)
      AddQuery(&call.path, "allowWatchBookmarks", "true");
    int64_t seconds =
        std::max<int64_t>(1, absl::ToInt64Seconds(options.timeout));
    AddQuery(&call.path, "timeoutSeconds", absl::StrCat(seconds));
    if (!options.label_selector.empty()) {
      AddQuery(&call.path, "labelSelector", options.label_selector);
    }
    if (!options.field_selector.empty()) {
      AddQuery(&call.path, "fieldSelector", options.field_selector);
    }
    call.use_request_timeout = false;
    call.timeout = absl::Seconds(seconds) + kWatchSlack;
    call.cancel = cancel;
    bool gone = false;
    bool got_event = false;
    absl::Status stream_error;
    LineSplitter lines([&](absl::string_view line) {
      if (absl::StripAsciiWhitespace(line).empty()) return true;
      nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
      if (doc.is_discarded() || !doc.is_object() || !doc.contains("type")) {
        stream_error = absl::InternalError(
            absl::StrCat("watch ", collection, ": a malformed event"));
        return false;
      }
      std::string type = StringMember(&doc, "type");
      const nlohmann::json* got = Member(doc, "object");
      nlohmann::json object = got != nullptr ? *got : nlohmann::json::object();
      got_event = true;
      if (type == "ERROR") {
        const nlohmann::json* c = Member(object, "code");
        long code = c != nullptr && c->is_number_integer() ? c->get<long>() : 0;
        if (code == 410) {
          gone = true;
        } else {
          stream_error = ApiError("WATCH", collection, code, object.dump());
        }
        return false;
      }
      std::string rv = ObjectVersion(object);
      if (!rv.empty()) version = rv;
      if (type == "BOOKMARK") return emit(type, object);
      if (type == "DELETED") {
        known.erase(ObjectKey(object));
      } else {
        known[ObjectKey(object)] = object;
      }
      return emit(type, object);
    });
    call.sink = [&](absl::string_view chunk) { return lines.Feed(chunk); };
    absl::Time started = absl::Now();
    absl::StatusOr<TransportResponse> r = impl_->Send(call);
    if (user_stopped) return absl::OkStatus();
    if (r.ok() && r->cancelled) return absl::OkStatus();
    if (got_event) failures = 0;
    if (r.ok() && r->status == 410) gone = true;
    if (gone) {
      if (absl::Status s = relist(); !s.ok() || user_stopped) return s;
      continue;
    }
    if (!stream_error.ok()) {
      if (!absl::IsUnavailable(stream_error)) return stream_error;
      last_error = stream_error;
    } else if (!r.ok() && absl::IsDeadlineExceeded(r.status()) &&
               absl::Now() - started >= absl::Seconds(seconds)) {
      continue;  // a quiet watch outlived its own bound: reconnect
    } else if (!r.ok()) {
      last_error = r.status();
    } else if (r->status < 200 || r->status >= 300) {
      absl::Status s = ApiError("GET", call.path, r->status, r->body);
      if (!absl::IsUnavailable(s)) return s;
      last_error = s;
    } else {
      continue;  // the server ended the watch (timeoutSeconds): reconnect
    }
    // A dropped or failed connection: reconnect from `version`, backing off.
    if (++failures > impl_->options().max_retries) return last_error;
    if (Impl::Wait(impl_->Backoff(failures - 1), cancel)) break;
  }
  return absl::OkStatus();
}

absl::Status Client::StreamLog(
    const std::string& ns, const std::string& pod, const LogOptions& options,
    const std::function<bool(absl::string_view)>& on_line, CancelFlag* cancel) {
  Impl::Call call;
  call.path = PodPath(ns, pod) + "/log";
  if (!options.container.empty()) {
    AddQuery(&call.path, "container", options.container);
  }
  if (options.follow) AddQuery(&call.path, "follow", "true");
  if (options.timestamps) AddQuery(&call.path, "timestamps", "true");
  if (options.since_time.has_value()) {
    // The API takes whole seconds; round down so nothing is lost (the
    // caller drops the repeated lines of that second).
    absl::Time t =
        absl::FromUnixSeconds(absl::ToUnixSeconds(*options.since_time));
    AddQuery(&call.path, "sinceTime",
             absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()));
  }
  call.use_request_timeout = false;
  call.timeout = absl::InfiniteDuration();
  if (!options.follow) call.stall_timeout = impl_->options().stall_timeout;
  call.cancel = cancel;
  bool stopped = false;
  LineSplitter lines([&](absl::string_view line) {
    if (!on_line(line)) stopped = true;
    return !stopped;
  });
  call.sink = [&](absl::string_view chunk) { return lines.Feed(chunk); };
  absl::StatusOr<TransportResponse> r = impl_->Send(call);
  if (stopped || (r.ok() && r->cancelled)) return absl::OkStatus();
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("log stream of pod ", ns, "/", pod,
                                     " dropped: ", r.status().message()));
  }
  if (r->status < 200 || r->status >= 300) {
    return ApiError("GET", call.path, r->status, r->body);
  }
  lines.Finish();
  return absl::OkStatus();
}

bool AppliedBy(const nlohmann::json& metadata,
               const std::string& field_manager) {
  auto fields = metadata.find("managedFields");
  if (fields == metadata.end() || !fields->is_array()) return false;
  for (const nlohmann::json& e : *fields) {
    if (e.is_object() && e.value("manager", "") == field_manager &&
        e.value("operation", "") == "Apply") {
      return true;
    }
  }
  return false;
}

}  // namespace kiln::kube
