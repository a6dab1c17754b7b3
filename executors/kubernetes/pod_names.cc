#include "executors/kubernetes/pod_names.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kiln {
namespace kubernetes {
namespace {

bool IsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-')
    return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(absl::ascii_islower(u) || absl::ascii_isdigit(u) || c == '-'))
      return false;
  }
  return true;
}

std::string HashHex(absl::string_view s, size_t hex_digits) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  std::string hex = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
  return hex.substr(0, hex_digits);
}

}  // namespace

std::string DnsLabel(absl::string_view base) {
  if (IsLabel(base)) return std::string(base);
  std::string clean;
  for (char c : base) {
    unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u)) {
      clean.push_back(absl::ascii_tolower(u));
    } else if (!clean.empty() && clean.back() != '-') {
      clean.push_back('-');
    }
  }
  const size_t kHash = 10;
  const size_t keep = 63 - 1 - kHash;
  if (clean.size() > keep) clean.resize(keep);
  while (!clean.empty() && clean.back() == '-') clean.pop_back();
  std::string hash = HashHex(base, kHash);
  return clean.empty() ? absl::StrCat("x-", hash)
                       : absl::StrCat(clean, "-", hash);
}

std::string PodName(absl::string_view run_id, absl::string_view task,
                    uint32_t attempt) {
  return DnsLabel(absl::StrCat("kiln-", run_id, "-", task, "-", attempt));
}

std::string AgentSecretName(absl::string_view executor_name) {
  return DnsLabel(absl::StrCat("kiln-agent-", executor_name));
}

std::map<std::string, std::string> PodLabels(absl::string_view run_id,
                                             absl::string_view task,
                                             uint32_t attempt) {
  return {{kLabelRun, DnsLabel(run_id)},
          {kLabelTask, DnsLabel(task)},
          {kLabelAttempt, absl::StrCat(attempt)},
          {kLabelManagedBy, "kiln"}};
}

std::map<std::string, std::string> PodAnnotations(absl::string_view run_id,
                                                  absl::string_view task) {
  return {{kAnnotationRunId, std::string(run_id)},
          {kAnnotationTaskName, std::string(task)}};
}

std::string RunSelector(absl::string_view run_id) {
  return absl::StrCat(kLabelRun, "=", DnsLabel(run_id), ",", kLabelManagedBy,
                      "=kiln");
}

std::string ManagedSelector() { return absl::StrCat(kLabelManagedBy, "=kiln"); }

}  // namespace kubernetes
}  // namespace kiln
