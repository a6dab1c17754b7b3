#include "kube/transport.h"

#include <curl/curl.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kube/client.h"

namespace kiln::kube {
namespace {

void GlobalInit() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

// The transfer state the curl callbacks write into.
struct Exchange {
  const TransportRequest* request = nullptr;
  TransportResponse* response = nullptr;
  bool too_big = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  absl::string_view line(data, size * n);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after 100 Continue or a redirect): start over.
    x->response->headers.clear();
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int code = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &code)) {
      x->response->status = code;
    }
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    x->response->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  absl::string_view chunk(data, size * n);
  long status = x->response->status;
  if (x->request->sink && status >= 200 && status < 300) {
    if (!x->request->sink(chunk)) {
      x->response->stopped = true;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    return chunk.size();
  }
  if (x->response->body.size() + chunk.size() > x->request->max_body_bytes) {
    x->too_big = true;
    return 0;
  }
  x->response->body.append(chunk.data(), chunk.size());
  return chunk.size();
}

// Splits "scheme://authority/rest" into its parts; false if not a URL.
bool SplitUrl(absl::string_view url, std::string* scheme, std::string* host,
              std::string* port, std::string* rest) {
  size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return false;
  *scheme = std::string(url.substr(0, sep));
  absl::string_view after = url.substr(sep + 3);
  size_t end = after.find_first_of("/?");
  absl::string_view authority = after.substr(0, end);
  *rest = end == absl::string_view::npos ? "" : std::string(after.substr(end));
  absl::string_view port_part;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) return false;
    *host = std::string(authority.substr(0, close + 1));
    port_part = authority.substr(close + 1);
  } else {
    size_t colon = authority.rfind(':');
    *host = std::string(authority.substr(0, colon));
    port_part = colon == absl::string_view::npos ? absl::string_view()
                                                 : authority.substr(colon);
  }
  *port = absl::StartsWith(port_part, ":") ? std::string(port_part.substr(1))
          : *scheme == "https"             ? "443"
                                           : "80";
  return !host->empty();
}

}  // namespace

struct Transport::Slot {
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
};

std::string TransportResponse::Header(absl::string_view name) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? "" : it->second;
}

std::string UrlWithoutQuery(absl::string_view url) {
  return std::string(url.substr(0, url.find_first_of("?#")));
}

Transport::Transport(TlsSettings tls, absl::Duration connect_timeout,
                     std::string user_agent)
    : tls_(std::move(tls)),
      connect_timeout_(connect_timeout),
      user_agent_(std::move(user_agent)) {}

Transport::~Transport() {
  MutexLock lock(&mu_);
  for (Slot* slot : idle_) {
    curl_easy_cleanup(slot->easy);
    curl_multi_cleanup(slot->multi);
    delete slot;
  }
}

Transport::Slot* Transport::Take() {
  {
    MutexLock lock(&mu_);
    if (!idle_.empty()) {
      Slot* slot = idle_.back();
      idle_.pop_back();
      return slot;
    }
  }
  auto* slot = new Slot;
  // libcurl is initialised (and, in kiln's binary, loaded: base/lazy) on
  // the first transfer, not when a client is made.
  GlobalInit();
  slot->multi = curl_multi_init();
  slot->easy = curl_easy_init();
  return slot;
}

void Transport::Give(Slot* slot) {
  MutexLock lock(&mu_);
  if (idle_.size() < 16) {
    idle_.push_back(slot);
    return;
  }
  curl_easy_cleanup(slot->easy);
  curl_multi_cleanup(slot->multi);
  delete slot;
}

absl::StatusOr<TransportResponse> Transport::Do(
    const TransportRequest& request) {
  std::string what =
      absl::StrCat(request.method, " ", UrlWithoutQuery(request.url));
  std::string scheme, host, port, rest;
  if (!SplitUrl(request.url, &scheme, &host, &port, &rest) ||
      (scheme != "https" && scheme != "http")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not an http(s) URL"));
  }
  std::string url = request.url;
  std::string connect_to;
  if (scheme == "https" && !tls_.server_name.empty() &&
      tls_.server_name != host) {
    // Verify the certificate for (and send SNI) server_name while
    // connecting to the configured host.
    url = absl::StrCat(scheme, "://", tls_.server_name, ":", port, rest);
    connect_to =
        absl::StrCat(tls_.server_name, ":", port, ":", host, ":", port);
  }

  Slot* slot = Take();
  CURL* h = slot->easy;
  curl_easy_reset(h);
  TransportResponse response;
  Exchange x;
  x.request = &request;
  x.response = &response;
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(
      h, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(connect_timeout_)));
  if (request.timeout != absl::InfiniteDuration()) {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(
                         1, absl::ToInt64Milliseconds(request.timeout))));
  }
  if (request.stall_timeout != absl::InfiniteDuration()) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(std::max<int64_t>(
                         1, absl::ToInt64Seconds(request.stall_timeout))));
  }
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);

  struct curl_slist* connect_list = nullptr;
  if (!connect_to.empty()) {
    connect_list = curl_slist_append(connect_list, connect_to.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_list);
  }
  if (scheme == "https") {
    if (tls_.insecure_skip_verify) {
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!tls_.ca_pem.empty()) {
      struct curl_blob ca;
      ca.data = const_cast<char*>(tls_.ca_pem.data());
      ca.len = tls_.ca_pem.size();
      ca.flags = CURL_BLOB_COPY;
      curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (!request.client_cert_pem.empty()) {
      struct curl_blob cert, key;
      cert.data = const_cast<char*>(request.client_cert_pem.data());
      cert.len = request.client_cert_pem.size();
      cert.flags = CURL_BLOB_COPY;
      key.data = const_cast<char*>(request.client_key_pem.data());
      key.len = request.client_key_pem.size();
      key.flags = CURL_BLOB_COPY;
      curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
      curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
      curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
    }
  }

  struct curl_slist* headers = nullptr;
  for (const std::string& header : request.headers) {
    headers = curl_slist_append(headers, header.c_str());
  }
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (request.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!request.body.empty() || request.method != "DELETE") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
  }
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);

  sent_.fetch_add(1);
  curl_multi_add_handle(slot->multi, h);
  // Cancel() wakes the poll below (curl_multi_wakeup may be called from
  // any thread); the loop then sees the flag at once.
  int waker = -1;
  if (request.cancel != nullptr) {
    waker = request.cancel->AddWaker(
        [multi = slot->multi] { curl_multi_wakeup(multi); });
  }
  CURLcode result = CURLE_OK;
  bool done = false;
  while (!done) {
    if (request.cancel != nullptr && request.cancel->cancelled()) {
      response.cancelled = true;
      break;
    }
    int running = 0;
    CURLMcode mc = curl_multi_perform(slot->multi, &running);
    if (mc != CURLM_OK) {
      result = CURLE_RECV_ERROR;
      snprintf(errbuf, sizeof(errbuf), "%s", curl_multi_strerror(mc));
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(slot->multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) {
        result = msg->data.result;
        done = true;
      }
    }
    if (done || running == 0) {
      done = true;
      break;
    }
    curl_multi_poll(slot->multi, nullptr, 0, 100, nullptr);
  }
  if (waker >= 0) request.cancel->RemoveWaker(waker);
  curl_multi_remove_handle(slot->multi, h);
  curl_slist_free_all(headers);
  curl_slist_free_all(connect_list);
  Give(slot);

  if (response.cancelled || response.stopped) return response;
  if (x.too_big) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, ": response larger than ", request.max_body_bytes, " bytes"));
  }
  if (result == CURLE_OK) return response;
  std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(result);
  if (result == CURLE_OPERATION_TIMEDOUT) {
    return absl::DeadlineExceededError(absl::StrCat(what, ": ", detail));
  }
  if (result == CURLE_PEER_FAILED_VERIFICATION ||
      result == CURLE_SSL_CACERT_BADFILE || result == CURLE_SSL_CERTPROBLEM) {
    // Trust or certificate configuration: retrying cannot help.
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", detail));
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", detail));
}

}  // namespace kiln::kube
