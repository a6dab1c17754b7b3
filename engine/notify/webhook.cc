#include "engine/notify/webhook.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/types/optional.h"
#include "nlohmann/json.hpp"

namespace kiln::notify {
namespace {

constexpr size_t kMaxResponseBytes = 64 << 10;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Discard(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  size_t bytes = size * n;
  if (body->size() < kMaxResponseBytes) {
    body->append(data, std::min(bytes, kMaxResponseBytes - body->size()));
  }
  return bytes;
}

struct Attempt {
  CURLcode code = CURLE_OK;
  long status = 0;
};

Attempt PostOnce(const std::string& url, const std::string& body,
                 absl::Duration timeout) {
  Attempt out;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    out.code = CURLE_FAILED_INIT;
    return out;
  }
  std::string response;
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  long ms = std::max<long>(1, absl::ToInt64Milliseconds(timeout));
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, ms);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  out.code = curl_easy_perform(curl);
  if (out.code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return out;
}

bool Retryable(const Attempt& a) {
  if (a.code != CURLE_OK) return true;  // connection error or timeout
  return a.status == 429 || a.status >= 500;
}

std::string Describe(const Attempt& a) {
  if (a.code != CURLE_OK) return curl_easy_strerror(a.code);
  return absl::StrCat("HTTP ", a.status);
}

}  // namespace

std::string RedactedUrl(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "(not a URL)";
  size_t host_begin = scheme + 3;
  size_t host_end = url.find_first_of("/?#", host_begin);
  std::string host = url.substr(host_begin, host_end == std::string::npos
                                                ? std::string::npos
                                                : host_end - host_begin);
  size_t at = host.rfind('@');
  if (at != std::string::npos) host = host.substr(at + 1);
  return absl::StrCat(url.substr(0, scheme), "://", host, "/…");
}

std::string TextBody(const std::string& text) {
  nlohmann::json body = {{"text", text}};
  // Invalid UTF-8 is replaced rather than thrown on.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<WebhookDelivery> PostWebhook(const std::string& url,
                                            const std::string& json_body,
                                            const WebhookOptions& options,
                                            WebhookDelivery* tried) {
  WebhookDelivery ignored;
  if (tried == nullptr) tried = &ignored;
  *tried = WebhookDelivery();
  if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "webhook URL ", RedactedUrl(url), " is not http:// or https://"));
  }
  GlobalInit();
  const absl::Time deadline = absl::Now() + options.total_timeout;
  absl::Duration backoff = options.first_backoff;
  WebhookDelivery delivery;
  Attempt last;
  // The last attempt that got an HTTP answer: the final attempt is often
  // cut short by the deadline, and its timeout alone would hide the cause.
  absl::optional<Attempt> answered;
  auto last_seen = [&last, &answered] {
    std::string said = Describe(last);
    if (last.code != CURLE_OK && answered.has_value()) {
      absl::StrAppend(&said, "; last answer: ", Describe(*answered));
    }
    return said;
  };
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "webhook ", RedactedUrl(url), ": no delivery within ",
          absl::FormatDuration(options.total_timeout), " (", delivery.attempts,
          " attempts; last: ", last_seen(), ")"));
    }
    last = PostOnce(url, json_body, std::min(left, options.attempt_timeout));
    ++delivery.attempts;
    if (last.code == CURLE_OK) answered = last;
    delivery.http_status = last.status;
    *tried = delivery;
    if (last.code == CURLE_OK && last.status >= 200 && last.status < 300) {
      return delivery;
    }
    if (!Retryable(last)) {
      return absl::FailedPreconditionError(
          absl::StrCat("webhook ", RedactedUrl(url), " answered ",
                       Describe(last), " (not retried)"));
    }
    if (delivery.attempts >= options.max_attempts) {
      return absl::UnavailableError(absl::StrCat(
          "webhook ", RedactedUrl(url), ": gave up after ", delivery.attempts,
          " attempts (last: ", last_seen(), ")"));
    }
    absl::Duration wait = std::min(backoff, deadline - absl::Now());
    if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

}  // namespace kiln::notify
