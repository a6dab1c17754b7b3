#include "engine/source/webhook_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/source/webhook_event.h"

namespace kiln::source {

absl::StatusOr<WebhookConfig> WebhookConfig::Parse(
    absl::string_view text, const std::string& filename) {
  WebhookConfig config;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    auto fail = [&](absl::string_view message) {
      return absl::InvalidArgumentError(
          absl::StrCat(filename, ":", line_no, ": ", message));
    };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    WebhookRepository repo;
    repo.url = std::string(fields[0]);
    for (size_t i = 1; i < fields.size(); ++i) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(fields[i], absl::MaxSplits('=', 1));
      if (kv.second.empty()) {
        return fail(absl::StrCat("'", fields[i], "' is not KEY=VALUE"));
      }
      std::string value(kv.second);
      if (kv.first == "secret") {
        repo.secret = value;
      } else if (kv.first == "pipeline") {
        if (absl::StartsWith(value, "/") || absl::StrContains(value, "..")) {
          return fail("pipeline= must be a path inside the repository");
        }
        repo.pipeline = value;
      } else if (kv.first == "fetch") {
        repo.fetch_url = value;
      } else if (kv.first == "credentials") {
        repo.credentials = value;
      } else {
        return fail(absl::StrCat("unknown key '", kv.first,
                                 "' (secret, pipeline, fetch, credentials)"));
      }
    }
    if (repo.secret.empty()) {
      return fail(absl::StrCat(repo.url,
                               " has no secret=NAME: every "
                               "repository's deliveries are signed"));
    }
    if (repo.fetch_url.empty()) repo.fetch_url = repo.url;
    if (config.Find({repo.url}) != nullptr) {
      return fail(absl::StrCat(repo.url, " is listed twice"));
    }
    config.repositories_.push_back(std::move(repo));
  }
  if (config.repositories_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ": lists no repository"));
  }
  return config;
}

absl::StatusOr<WebhookConfig> WebhookConfig::ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().size() > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": over 1 MiB"));
  }
  return Parse(text.str(), path);
}

const WebhookRepository* WebhookConfig::Find(
    const std::vector<std::string>& urls) const {
  for (const std::string& url : urls) {
    std::string want = NormalizeRepositoryUrl(url);
    for (const WebhookRepository& repo : repositories_) {
      if (NormalizeRepositoryUrl(repo.url) == want) return &repo;
    }
  }
  return nullptr;
}

}  // namespace kiln::source
