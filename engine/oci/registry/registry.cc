#include "engine/oci/registry/registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "nlohmann/json.hpp"

namespace kiln::oci::registry {
namespace {

// Bound on the cross-repository mount memory (digest → repository).
constexpr size_t kMaxKnownBlobs = 100000;
// Error bodies kept from blob responses.
constexpr size_t kMaxErrorBodyBytes = 64 << 10;

std::string AcceptManifests() {
  return absl::StrCat("Accept: ", kOciManifest, ", ", kOciIndex, ", ",
                      kDockerManifest, ", ", kDockerManifestList);
}

// The media type of a Content-Type value ("type/sub; charset=…" → type/sub).
std::string MediaTypeOf(absl::string_view content_type) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(
      content_type.substr(0, content_type.find(';'))));
}

bool IsTagText(absl::string_view s) {
  auto r = ParseReference(absl::StrCat("localhost/x:", s));
  return r.ok() && r->tag == s;
}

absl::Status CheckDescriptor(const Descriptor& blob) {
  if (!cas::Digest::Parse(blob.digest).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed blob digest '", blob.digest.substr(0, 100), "'"));
  }
  if (blob.size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob ", blob.digest, ": negative size"));
  }
  return absl::OkStatus();
}

bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

// "bytes START-END/TOTAL" → START.
bool RangeStart(absl::string_view content_range, int64_t* start) {
  absl::string_view v = absl::StripAsciiWhitespace(content_range);
  if (!absl::ConsumePrefix(&v, "bytes ")) return false;
  return absl::SimpleAtoi(v.substr(0, v.find('-')), start);
}

// Upload progress header "0-END" (inclusive) → bytes the registry has.
// Distribution answers "0-0" for an empty upload too; `known` disambiguates.
bool UploadedBytes(absl::string_view range, int64_t known, int64_t* out) {
  absl::string_view v = absl::StripAsciiWhitespace(range);
  absl::ConsumePrefix(&v, "bytes=");
  std::vector<absl::string_view> parts = absl::StrSplit(v, '-');
  int64_t a, b;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &a) ||
      !absl::SimpleAtoi(parts[1], &b) || a != 0 || b < 0) {
    return false;
  }
  *out = (b == 0 && known == 0) ? 0 : b + 1;
  return true;
}

}  // namespace

// ---------------------------------------------------------------- sources

absl::StatusOr<std::unique_ptr<RegistrySources>> RegistrySources::Create(
    RegistryOptions options) {
  if (options.retry.max_attempts < 1) {
    return absl::InvalidArgumentError("registry: retry attempts must be >= 1");
  }
  if (options.chunk_bytes < 0 || options.chunked_upload_threshold < 0) {
    return absl::InvalidArgumentError("registry: negative chunk size");
  }
  CredentialsMap credentials;
  if (!options.docker_config_path.empty()) {
    absl::StatusOr<CredentialsMap> loaded =
        LoadDockerConfig(options.docker_config_path);
    if (!loaded.ok()) return loaded.status();
    credentials = *std::move(loaded);
  }
  for (const auto& [registry, c] : options.credentials) {
    credentials[NormalizeRegistryKey(registry)] = c;
  }
  for (std::string& r : options.insecure_registries) {
    r = NormalizeRegistryKey(r);
  }
  return std::unique_ptr<RegistrySources>(
      new RegistrySources(std::move(options), std::move(credentials)));
}

RegistrySources::RegistrySources(RegistryOptions options,
                                 CredentialsMap credentials)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      transport_(HttpOptions{options_.ca_file, options_.connect_timeout,
                             options_.stall_timeout, 5, options_.user_agent}) {}

RegistrySources::~RegistrySources() = default;

absl::StatusOr<std::shared_ptr<RegistryClient>> RegistrySources::Client(
    const std::string& registry) {
  MutexLock lock(&mu_);
  auto it = clients_.find(registry);
  if (it != clients_.end()) return it->second;
  std::string key = absl::AsciiStrToLower(registry);
  bool insecure =
      std::find(options_.insecure_registries.begin(),
                options_.insecure_registries.end(),
                key) != options_.insecure_registries.end() ||
      (options_.plain_http_loopback && IsLoopbackRegistry(registry));
  std::string host = registry == kDockerHub ? "registry-1.docker.io" : registry;
  std::string base = absl::StrCat(insecure ? "http://" : "https://", host);
  Credentials creds;
  if (auto c = credentials_.find(key); c != credentials_.end()) {
    creds = c->second;
  }
  auto client = std::make_shared<RegistryClient>(
      registry, base, insecure, std::move(creds), options_.retry, &transport_);
  clients_[registry] = client;
  return client;
}

absl::StatusOr<OpenedReference> RegistrySources::Open(
    const std::string& reference) {
  absl::StatusOr<Reference> ref = ParseReference(reference);
  if (!ref.ok()) return ref.status();
  absl::StatusOr<std::unique_ptr<RegistrySource>> source = OpenRepository(*ref);
  if (!source.ok()) return source.status();
  OpenedReference out;
  out.source = *std::move(source);
  out.name = ref->Name();
  out.tag_or_digest = ref->TagOrDigest();
  return out;
}

absl::StatusOr<std::unique_ptr<RegistrySource>> RegistrySources::OpenRepository(
    const Reference& ref) {
  absl::StatusOr<std::shared_ptr<RegistryClient>> client = Client(ref.registry);
  if (!client.ok()) return client.status();
  return std::make_unique<RegistrySource>(this, *std::move(client),
                                          ref.repository);
}

void RegistrySources::NoteBlob(const std::string& registry,
                               const std::string& repository,
                               const std::string& digest) {
  MutexLock lock(&mu_);
  auto& blobs = known_blobs_[registry];
  auto [it, inserted] = blobs.emplace(digest, repository);
  if (!inserted) {
    it->second = repository;
    return;
  }
  if (++known_blob_count_ > kMaxKnownBlobs) {
    // Forget everything rather than track ages: a missed mount only costs
    // an upload.
    known_blobs_.clear();
    known_blob_count_ = 0;
  }
}

std::string RegistrySources::KnownRepository(
    const std::string& registry, const std::string& digest,
    const std::string& not_repository) {
  MutexLock lock(&mu_);
  auto r = known_blobs_.find(registry);
  if (r == known_blobs_.end()) return "";
  auto d = r->second.find(digest);
  if (d == r->second.end() || d->second == not_repository) return "";
  return d->second;
}

// ---------------------------------------------------------------- source

RegistrySource::RegistrySource(RegistrySources* sources,
                               std::shared_ptr<RegistryClient> client,
                               std::string repository)
    : sources_(sources),
      client_(std::move(client)),
      repository_(std::move(repository)) {}

std::string RegistrySource::Describe() const {
  return absl::StrCat("registry ", client_->registry(), " repository ",
                      repository_);
}

std::string RegistrySource::PullScope() const {
  return absl::StrCat("repository:", repository_, ":pull");
}

std::string RegistrySource::PushScope(const std::string& mount_from) const {
  std::string scope = absl::StrCat("repository:", repository_, ":pull,push");
  if (!mount_from.empty()) {
    absl::StrAppend(&scope, " repository:", mount_from, ":pull");
  }
  return scope;
}

absl::StatusOr<FetchedManifest> RegistrySource::GetManifest(
    const std::string& tag_or_digest) {
  bool by_digest = absl::StartsWith(tag_or_digest, "sha256:");
  if (by_digest ? !cas::Digest::Parse(tag_or_digest).ok()
                : !IsTagText(tag_or_digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": malformed tag or digest '",
                     tag_or_digest.substr(0, 200), "'"));
  }
  const std::string what = absl::StrCat("GET manifest ", tag_or_digest);
  HttpRequest req;
  req.url = client_->Url(
      absl::StrCat("/v2/", repository_, "/manifests/", tag_or_digest));
  req.headers.push_back(AcceptManifests());
  req.max_body_bytes = kMaxManifestBytes;
  req.timeout = sources_->options().request_timeout;
  absl::StatusOr<HttpResponse> resp =
      client_->Send(std::move(req), PullScope(), /*retryable=*/true);
  if (!resp.ok()) return client_->Annotate(resp.status(), repository_, what);
  if (resp->status != 200) {
    return client_->ResponseError(*resp, repository_, what);
  }
  FetchedManifest out;
  out.bytes = std::move(resp->body);
  out.media_type = MediaTypeOf(resp->Header("content-type"));
  if (!IsManifestMediaType(out.media_type) &&
      !IsIndexMediaType(out.media_type)) {
    // Some registries serve a generic type; the document may name its own.
    nlohmann::json doc = nlohmann::json::parse(out.bytes, nullptr, false);
    std::string named;
    if (doc.is_object()) {
      auto m = doc.find("mediaType");
      if (m != doc.end() && m->is_string()) named = m->get<std::string>();
    }
    if (IsManifestMediaType(named) || IsIndexMediaType(named)) {
      out.media_type = named;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(), ": ", what, ": served as '",
          out.media_type.substr(0, 200),
          "', not an OCI or Docker v2 manifest or index (Docker schema 1 is "
          "not supported)"));
    }
  }
  out.digest = cas::Digest::Of(out.bytes).ToString();
  if (by_digest && out.digest != tag_or_digest) {
    return absl::DataLossError(absl::StrCat(Describe(), ": ", what,
                                            ": the registry served bytes "
                                            "with digest ",
                                            out.digest));
  }
  std::string stated = resp->Header("docker-content-digest");
  if (absl::StartsWith(stated, "sha256:") && stated != out.digest) {
    return absl::DataLossError(absl::StrCat(
        Describe(), ": ", what, ": Docker-Content-Digest says ",
        stated.substr(0, 100), " but the bytes have digest ", out.digest));
  }
  return out;
}

absl::Status RegistrySource::FetchBlob(const Descriptor& blob, int out_fd) {
  if (absl::Status s = CheckDescriptor(blob); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": ", s.message()));
  }
  const RegistryOptions& options = sources_->options();
  const std::string what = absl::StrCat("GET blob ", blob.digest);
  const off_t start = lseek(out_fd, 0, SEEK_CUR);
  cas::Sha256 hasher;
  int64_t written = 0;
  int64_t asked_from = 0;  // the Range start of the current attempt
  bool restarted = false;

  HttpRequest req;
  req.url =
      client_->Url(absl::StrCat("/v2/", repository_, "/blobs/", blob.digest));
  req.follow_redirects = true;
  req.allow_http_redirects = client_->insecure();
  req.timeout = options.blob_timeout;
  req.max_body_bytes = kMaxErrorBodyBytes;
  req.on_headers = [&](const HttpResponse& r) -> absl::Status {
    if (asked_from == 0) return absl::OkStatus();
    int64_t from = -1;
    if (r.status == 206 && RangeStart(r.Header("content-range"), &from) &&
        from == asked_from) {
      return absl::OkStatus();
    }
    // The registry ignored the range: start over if out_fd allows it.
    if (start < 0 || ftruncate(out_fd, start) != 0 ||
        lseek(out_fd, start, SEEK_SET) != start) {
      return absl::UnavailableError(
          "the registry ignored the Range of a resumed download and the "
          "output cannot be rewound");
    }
    hasher.Finish();
    written = 0;
    restarted = true;
    return absl::OkStatus();
  };
  req.sink = [&](absl::string_view data) -> absl::Status {
    if (written + static_cast<int64_t>(data.size()) > blob.size) {
      return absl::DataLossError(
          absl::StrCat("the registry sent more than the blob's size of ",
                       blob.size, " bytes"));
    }
    if (absl::Status s = cas::WriteAll(out_fd, data, "blob output"); !s.ok()) {
      return absl::Status(absl::StatusCode::kAborted, s.message());
    }
    hasher.Update(data);
    written += data.size();
    return absl::OkStatus();
  };

  absl::Status last;
  for (int attempt = 1; written < blob.size || attempt == 1; ++attempt) {
    if (attempt > options.retry.max_attempts) {
      return client_->Annotate(
          absl::Status(
              last.ok() ? absl::StatusCode::kDataLoss : last.code(),
              absl::StrCat(
                  "gave up after ", options.retry.max_attempts,
                  " attempts with ", written, " of ", blob.size, " bytes: ",
                  last.ok() ? "the blob was truncated" : last.message())),
          repository_, what);
    }
    HttpRequest r = req;
    asked_from = written;
    if (written > 0) {
      r.headers.push_back(absl::StrCat("Range: bytes=", written, "-"));
    }
    absl::StatusOr<HttpResponse> resp =
        client_->Send(std::move(r), PullScope(), /*retryable=*/false);
    std::string retry_after;
    if (!resp.ok()) {
      if (!Transient(resp.status())) {
        return client_->Annotate(resp.status(), repository_, what);
      }
      last = resp.status();
    } else if (resp->status >= 200 && resp->status < 300) {
      last = absl::OkStatus();
      if (written == blob.size) break;
      if (resp->sink_bytes == 0 && !restarted) {
        // No progress at all: do not loop on an empty answer.
        last = absl::DataLossError("the registry sent no bytes");
      }
    } else if (resp->status == 429 || resp->status >= 500) {
      last = client_->ResponseError(*resp, repository_, what);
      retry_after = resp->Header("retry-after");
    } else {
      return client_->ResponseError(*resp, repository_, what);
    }
    restarted = false;
    if (written < blob.size) {
      absl::SleepFor(Backoff(options.retry, attempt, retry_after));
    }
  }
  cas::Digest got = hasher.Finish();
  if (got.ToString() != blob.digest) {
    return client_->Annotate(
        absl::DataLossError(absl::StrCat(
            "the bytes have digest ", got.ToString(), ", not ", blob.digest)),
        repository_, what);
  }
  sources_->NoteBlob(client_->registry(), repository_, blob.digest);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- push

absl::StatusOr<bool> RegistrySource::BlobExists(const Descriptor& blob) {
  if (absl::Status s = CheckDescriptor(blob); !s.ok()) return s;
  const std::string what = absl::StrCat("HEAD blob ", blob.digest);
  HttpRequest req;
  req.method = "HEAD";
  req.url =
      client_->Url(absl::StrCat("/v2/", repository_, "/blobs/", blob.digest));
  req.follow_redirects = true;
  req.allow_http_redirects = client_->insecure();
  req.timeout = sources_->options().request_timeout;
  absl::StatusOr<HttpResponse> resp =
      client_->Send(std::move(req), PushScope(), /*retryable=*/true);
  if (!resp.ok()) return client_->Annotate(resp.status(), repository_, what);
  if (resp->status == 404) return false;
  if (resp->status != 200) {
    return client_->ResponseError(*resp, repository_, what);
  }
  int64_t length = -1;
  std::string cl = resp->Header("content-length");
  if (!cl.empty() && absl::SimpleAtoi(cl, &length) && length != blob.size) {
    return client_->Annotate(
        absl::FailedPreconditionError(absl::StrCat(
            "the registry holds it with size ", length, ", not ", blob.size)),
        repository_, what);
  }
  return true;
}

absl::StatusOr<std::string> RegistrySource::StartUpload(
    const Descriptor& blob, const std::string& mount_from, bool* mounted) {
  *mounted = false;
  std::string path = absl::StrCat("/v2/", repository_, "/blobs/uploads/");
  if (!mount_from.empty()) {
    absl::StrAppend(&path, "?mount=", UrlEncode(blob.digest),
                    "&from=", UrlEncode(mount_from));
  }
  const std::string what =
      mount_from.empty()
          ? std::string("POST upload")
          : absl::StrCat("POST mount of ", blob.digest, " from ", mount_from);
  HttpRequest req;
  req.method = "POST";
  req.url = client_->Url(path);
  req.timeout = sources_->options().request_timeout;
  absl::StatusOr<HttpResponse> resp =
      client_->Send(std::move(req), PushScope(mount_from), /*retryable=*/true);
  if (!resp.ok()) return client_->Annotate(resp.status(), repository_, what);
  if (resp->status == 201 && !mount_from.empty()) {
    *mounted = true;
    return std::string();
  }
  if (resp->status != 202) {
    return client_->ResponseError(*resp, repository_, what);
  }
  absl::StatusOr<std::string> location =
      client_->ResolveLocation(resp->Header("location"));
  if (!location.ok())
    return client_->Annotate(location.status(), repository_, what);
  return location;
}

absl::Status RegistrySource::Upload(const Descriptor& blob, int fd,
                                    std::string location) {
  const RegistryOptions& options = sources_->options();
  const std::string what = absl::StrCat("upload of blob ", blob.digest);
  const bool chunked =
      options.chunk_bytes > 0 && blob.size > options.chunked_upload_threshold;
  int64_t offset = 0;
  if (chunked) {
    int failures = 0;
    while (offset < blob.size) {
      int64_t len = std::min(options.chunk_bytes, blob.size - offset);
      HttpRequest req;
      req.method = "PATCH";
      req.url = location;
      req.headers = {
          "Content-Type: application/octet-stream",
          absl::StrCat("Content-Range: ", offset, "-", offset + len - 1)};
      req.body_fd = fd;
      req.body_offset = offset;
      req.body_length = len;
      req.timeout = options.blob_timeout;
      absl::StatusOr<HttpResponse> resp =
          client_->Send(req, PushScope(), /*retryable=*/false);
      if (resp.ok() && resp->status == 202) {
        absl::StatusOr<std::string> next =
            client_->ResolveLocation(resp->Header("location"));
        if (!next.ok())
          return client_->Annotate(next.status(), repository_, what);
        location = *std::move(next);
        int64_t have = 0;
        if (!UploadedBytes(resp->Header("range"), offset + len, &have) ||
            have != offset + len) {
          return client_->Annotate(
              absl::FailedPreconditionError(
                  absl::StrCat("after a chunk to byte ", offset + len,
                               " the registry reports range '",
                               resp->Header("range").substr(0, 100), "'")),
              repository_, what);
        }
        offset = have;
        continue;
      }
      absl::Status err =
          resp.ok() ? client_->ResponseError(*resp, repository_,
                                             absl::StrCat("PATCH ", what))
                    : client_->Annotate(resp.status(), repository_, what);
      bool retry = resp.ok() ? (resp->status == 429 || resp->status >= 500)
                             : Transient(resp.status());
      if (!retry || ++failures >= options.retry.max_attempts) return err;
      absl::SleepFor(Backoff(options.retry, failures, ""));
      // Ask the registry how much it kept; resume there.
      HttpRequest status;
      status.url = location;
      status.timeout = options.request_timeout;
      absl::StatusOr<HttpResponse> st =
          client_->Send(status, PushScope(), /*retryable=*/true);
      int64_t have = 0;
      if (!st.ok() || st->status != 204 ||
          !UploadedBytes(st->Header("range"), offset, &have) ||
          have > blob.size) {
        return absl::Status(
            err.code(),
            absl::StrCat(err.message(), " (the upload session is lost)"));
      }
      if (absl::StatusOr<std::string> next =
              client_->ResolveLocation(st->Header("location"));
          next.ok()) {
        location = *std::move(next);
      }
      offset = have;
    }
  }
  HttpRequest put;
  put.method = "PUT";
  put.url = absl::StrCat(location,
                         location.find('?') == std::string::npos ? "?" : "&",
                         "digest=", UrlEncode(blob.digest));
  put.headers = {"Content-Type: application/octet-stream"};
  if (!chunked) {
    put.body_fd = fd;
    put.body_offset = 0;
    put.body_length = blob.size;
  }
  put.timeout = options.blob_timeout;
  absl::StatusOr<HttpResponse> resp =
      client_->Send(std::move(put), PushScope(), /*retryable=*/false);
  if (!resp.ok()) return client_->Annotate(resp.status(), repository_, what);
  if (resp->status != 201) {
    return client_->ResponseError(*resp, repository_,
                                  absl::StrCat("PUT ", what));
  }
  return absl::OkStatus();
}

absl::Status RegistrySource::PushBlob(const Descriptor& blob, int fd,
                                      const std::string& mount_from) {
  absl::StatusOr<bool> exists = BlobExists(blob);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    sources_->NoteBlob(client_->registry(), repository_, blob.digest);
    return absl::OkStatus();
  }
  std::string from = mount_from;
  if (from.empty()) {
    from = sources_->KnownRepository(client_->registry(), blob.digest,
                                     repository_);
  }
  if (from == repository_) from.clear();
  const RetryPolicy& retry = sources_->options().retry;
  absl::Status last;
  for (int attempt = 1; attempt <= retry.max_attempts; ++attempt) {
    bool mounted = false;
    absl::StatusOr<std::string> location =
        StartUpload(blob, attempt == 1 ? from : "", &mounted);
    if (!location.ok()) return location.status();
    if (!mounted) {
      // A whole-upload restart: a fresh session after a failed one.
      last = Upload(blob, fd, *std::move(location));
      if (!last.ok() && Transient(last) && attempt < retry.max_attempts) {
        absl::SleepFor(Backoff(retry, attempt, ""));
        continue;
      }
      if (!last.ok()) return last;
    }
    sources_->NoteBlob(client_->registry(), repository_, blob.digest);
    return absl::OkStatus();
  }
  return last;
}

absl::StatusOr<std::string> RegistrySource::PutManifest(
    const std::string& tag_or_digest, const std::string& bytes,
    const std::string& media_type) {
  const std::string what = absl::StrCat("PUT manifest ", tag_or_digest);
  bool by_digest = absl::StartsWith(tag_or_digest, "sha256:");
  if (by_digest ? !cas::Digest::Parse(tag_or_digest).ok()
                : !IsTagText(tag_or_digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": malformed tag or digest '",
                     tag_or_digest.substr(0, 200), "'"));
  }
  if (!IsManifestMediaType(media_type) && !IsIndexMediaType(media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": ", what, ": '", media_type.substr(0, 200),
                     "' is not a manifest or index media type"));
  }
  if (bytes.size() > kMaxManifestBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(), ": ", what, ": ", bytes.size(),
        " bytes is over the manifest limit of ", kMaxManifestBytes));
  }
  std::string digest = cas::Digest::Of(bytes).ToString();
  if (by_digest && digest != tag_or_digest) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(), ": ", what, ": the manifest's digest is ", digest));
  }
  HttpRequest req;
  req.method = "PUT";
  req.url = client_->Url(
      absl::StrCat("/v2/", repository_, "/manifests/", tag_or_digest));
  req.headers = {absl::StrCat("Content-Type: ", media_type)};
  req.body = bytes;
  req.timeout = sources_->options().request_timeout;
  absl::StatusOr<HttpResponse> resp =
      client_->Send(std::move(req), PushScope(), /*retryable=*/true);
  if (!resp.ok()) return client_->Annotate(resp.status(), repository_, what);
  if (resp->status != 201 && resp->status != 200) {
    return client_->ResponseError(*resp, repository_, what);
  }
  std::string stated = resp->Header("docker-content-digest");
  if (absl::StartsWith(stated, "sha256:") && stated != digest) {
    return client_->Annotate(
        absl::DataLossError(
            absl::StrCat("the registry stored digest ", stated.substr(0, 100),
                         " for a manifest with digest ", digest)),
        repository_, what);
  }
  return digest;
}

}  // namespace kiln::oci::registry
