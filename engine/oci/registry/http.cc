#include "engine/oci/registry/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kiln::oci::registry {
namespace {

constexpr size_t kMaxIdleHandles = 8;
constexpr size_t kMaxHeaderBytes = 64 << 10;

struct Transfer {
  const HttpRequest* request;
  HttpResponse response;
  size_t header_bytes = 0;
  int64_t sent = 0;
  absl::Status error;  // set by a callback that aborted the transfer
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  absl::string_view line(data, len);
  t->header_bytes += len;
  if (t->header_bytes > kMaxHeaderBytes) {
    t->error = absl::ResourceExhaustedError("response headers over 64 KiB");
    return 0;
  }
  line = absl::StripTrailingAsciiWhitespace(line);
  long status = t->response.status;
  if (line.empty() && status >= 200 && status < 300 && t->request->on_headers) {
    absl::Status s = t->request->on_headers(t->response);
    if (!s.ok()) {
      t->error = std::move(s);
      return 0;
    }
    return len;
  }
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a redirect or a 100 Continue): start over.
    t->response.headers.clear();
    t->response.body.clear();
    t->header_bytes = len;
    size_t sp = line.find(' ');
    int code = 0;
    if (sp != absl::string_view::npos &&
        absl::SimpleAtoi(line.substr(sp + 1, 3), &code)) {
      t->response.status = code;
    }
    return len;
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return len;
  std::string name =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
  t->response.headers[name] =
      std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  return len;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  long status = t->response.status;
  if (t->request->sink && status >= 200 && status < 300) {
    absl::Status s = t->request->sink(absl::string_view(data, len));
    if (!s.ok()) {
      t->error = std::move(s);
      return 0;
    }
    t->response.sink_bytes += len;
    return len;
  }
  if (t->response.body.size() + len > t->request->max_body_bytes) {
    t->error = absl::ResourceExhaustedError(
        absl::StrCat("response body over the limit of ",
                     t->request->max_body_bytes, " bytes"));
    return 0;
  }
  t->response.body.append(data, len);
  return len;
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& r = *t->request;
  size_t want = size * n;
  int64_t total =
      r.body_fd >= 0 ? r.body_length : static_cast<int64_t>(r.body.size());
  int64_t left = total - t->sent;
  if (left <= 0) return 0;
  want = static_cast<size_t>(std::min<int64_t>(left, want));
  if (r.body_fd < 0) {
    std::copy_n(r.body.data() + t->sent, want, buffer);
    t->sent += want;
    return want;
  }
  ssize_t got;
  do {
    got = pread(r.body_fd, buffer, want, r.body_offset + t->sent);
  } while (got < 0 && errno == EINTR);
  if (got <= 0) {
    t->error = absl::DataLossError(
        got < 0 ? absl::StrCat("reading the upload: ", strerror(errno))
                : "the upload's source ended before its declared size");
    return CURL_READFUNC_ABORT;
  }
  t->sent += got;
  return static_cast<size_t>(got);
}

int64_t Millis(absl::Duration d) {
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(d));
}

absl::Status FromCurl(CURLcode code, const char* detail, const std::string& url,
                      const HttpRequest& r) {
  std::string msg = absl::StrCat(r.method, " ", UrlForMessages(url), ": ",
                                 detail[0] ? detail : curl_easy_strerror(code));
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(
          absl::StrCat(msg, " (request or stall timeout)"));
    case CURLE_TOO_MANY_REDIRECTS:
      return absl::FailedPreconditionError(
          absl::StrCat(msg, " (a redirect loop?)"));
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

}  // namespace

std::string HttpResponse::Header(absl::string_view lowercase_name) const {
  auto it = headers.find(std::string(lowercase_name));
  return it == headers.end() ? "" : it->second;
}

void PrepareHttp() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string UrlForMessages(absl::string_view url) {
  size_t cut = url.find_first_of("?#");
  return std::string(url.substr(0, cut));
}

HttpTransport::HttpTransport(HttpOptions options)
    : options_(std::move(options)) {}

HttpTransport::~HttpTransport() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpTransport::TakeHandle() {
  {
    MutexLock lock(&mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  // libcurl is initialised (and, in kiln's binary, loaded: base/lazy) on
  // the first request, not when a registry client is configured: most runs
  // make none.
  PrepareHttp();
  return curl_easy_init();
}

void HttpTransport::ReturnHandle(void* handle) {
  curl_easy_reset(static_cast<CURL*>(handle));
  {
    MutexLock lock(&mu_);
    if (idle_.size() < kMaxIdleHandles) {
      idle_.push_back(handle);
      return;
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

absl::StatusOr<HttpResponse> HttpTransport::Do(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(TakeHandle());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Transfer t;
  t.request = &request;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR,
                   request.allow_http_redirects ? "http,https" : "https");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(Millis(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(Millis(request.timeout)));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(
      curl, CURLOPT_LOW_SPEED_TIME,
      std::max<long>(1, absl::ToInt64Seconds(options_.stall_timeout)));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION,
                   request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS,
                   static_cast<long>(options_.max_redirects));
  // Credentials set as headers are never sent to another host on redirect.
  curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
  curl_easy_setopt(curl, CURLOPT_READDATA, &t);

  int64_t body_size = request.body_fd >= 0
                          ? request.body_length
                          : static_cast<int64_t>(request.body.size());
  const std::string& m = request.method;
  if (m == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (m == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body_size));
  } else if (m == "PUT" || m == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(body_size));
    if (m == "PATCH") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PATCH");
  } else if (m != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, m.c_str());
  }

  CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  ReturnHandle(curl);
  if (!t.error.ok()) {
    return absl::Status(
        t.error.code(),
        absl::StrCat(request.method, " ", UrlForMessages(request.url), ": ",
                     t.error.message()));
  }
  if (code != CURLE_OK) return FromCurl(code, errbuf, request.url, request);
  return std::move(t.response);
}

}  // namespace kiln::oci::registry
