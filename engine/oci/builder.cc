#include "engine/oci/builder.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "engine/oci/layout.h"

namespace kiln::oci {
namespace {

constexpr char kBaseDigestAnnotation[] = "org.opencontainers.image.base.digest";
constexpr char kBaseNameAnnotation[] = "org.opencontainers.image.base.name";

// Fetches a small blob (the base's config) into memory through the
// source's verified FetchBlob.
absl::StatusOr<std::string> FetchSmall(ImageSource& source,
                                       const Descriptor& blob,
                                       size_t max_bytes) {
  if (blob.size < 0 || static_cast<uint64_t>(blob.size) > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(source.Describe(), ": blob ", blob.digest, " is ",
                     blob.size, " bytes, over the limit of ", max_bytes));
  }
  int fd = memfd_create("kiln-oci-blob", MFD_CLOEXEC);
  if (fd < 0) return cas::ErrnoStatus(errno, "memfd_create");
  cas::UniqueFd mem(fd);
  absl::Status s = source.FetchBlob(blob, fd);
  if (!s.ok()) return s;
  struct stat st;
  if (fstat(fd, &st) != 0) return cas::ErrnoStatus(errno, "fstat memfd");
  if (st.st_size != blob.size) {
    return absl::DataLossError(
        absl::StrCat(source.Describe(), ": blob ", blob.digest, " came as ",
                     st.st_size, " bytes, expected ", blob.size));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  if (lseek(fd, 0, SEEK_SET) != 0) return cas::ErrnoStatus(errno, "lseek");
  absl::StatusOr<size_t> n = cas::ReadFull(fd, out.data(), out.size(), "blob");
  if (!n.ok()) return n.status();
  out.resize(*n);
  return out;
}

void SetEnv(std::vector<std::string>* env, const std::string& name,
            const std::string& value) {
  std::string entry = absl::StrCat(name, "=", value);
  for (std::string& e : *env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 &&
        e[name.size()] == '=') {
      e = entry;
      return;
    }
  }
  env->push_back(entry);
}

}  // namespace

std::string Rfc3339(int64_t epoch) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(epoch),
                          absl::UTCTimeZone());
}

absl::StatusOr<std::string> NormalizePort(const std::string& port) {
  std::vector<std::string> parts = absl::StrSplit(port, '/');
  uint32_t number = 0;
  if (parts.size() > 2 || !absl::SimpleAtoi(parts[0], &number) || number == 0 ||
      number > 65535 || parts[0][0] == '+' || parts[0][0] == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        "exposed port '", port, "' is not PORT or PORT/tcp|udp|sctp"));
  }
  std::string proto =
      parts.size() == 2 ? absl::AsciiStrToLower(parts[1]) : "tcp";
  if (proto != "tcp" && proto != "udp" && proto != "sctp") {
    return absl::InvalidArgumentError(absl::StrCat(
        "exposed port '", port, "' has an unknown protocol (tcp, udp, sctp)"));
  }
  return absl::StrCat(number, "/", proto);
}

absl::StatusOr<BuiltImage> BuildImage(const BuildRequest& req, int parent_fd,
                                      const std::string& name) {
  absl::StatusOr<LayoutWriter> layout = LayoutWriter::Create(parent_fd, name);
  if (!layout.ok()) return layout.status();
  const std::string created = Rfc3339(req.created_epoch);

  Manifest manifest;
  manifest.media_type = kOciManifest;
  ImageConfig config;
  config.platform = req.platform;

  if (req.base != nullptr) {
    ImageSource& base = *req.base;
    absl::StatusOr<FetchedManifest> fetched = base.GetManifest(req.base_digest);
    if (!fetched.ok()) return fetched.status();
    if (!IsManifestMediaType(fetched->media_type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          base.Describe(), ": ", req.base_digest, " is not an image manifest (",
          fetched->media_type, "); resolve the platform first"));
    }
    absl::StatusOr<Manifest> parsed =
        ParseManifest(fetched->bytes, fetched->media_type);
    if (!parsed.ok()) return parsed.status();
    absl::StatusOr<std::string> config_bytes =
        FetchSmall(base, parsed->config, kMaxConfigBytes);
    if (!config_bytes.ok()) return config_bytes.status();
    absl::StatusOr<ImageConfig> base_config = ParseImageConfig(*config_bytes);
    if (!base_config.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(base.Describe(), ": ", base_config.status().message()));
    }
    config = *std::move(base_config);
    if (config.platform.os != req.platform.os ||
        config.platform.architecture != req.platform.architecture) {
      return absl::InvalidArgumentError(absl::StrCat(
          base.Describe(), ": the base image is for ",
          config.platform.ToString(), ", not ", req.platform.ToString()));
    }
    if (config.diff_ids.size() != parsed->layers.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          base.Describe(), ": the base config lists ", config.diff_ids.size(),
          " diff_ids for ", parsed->layers.size(), " layers"));
    }
    for (const Descriptor& l : parsed->layers) {
      absl::StatusOr<std::string> compression = LayerCompression(l.media_type);
      if (!compression.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(base.Describe(), ": layer ", l.digest, ": ",
                         compression.status().message()));
      }
      std::string temp;
      absl::StatusOr<cas::UniqueFd> fd = layout->NewBlobFile(&temp);
      if (!fd.ok()) return fd.status();
      absl::Status s = base.FetchBlob(l, fd->get());
      if (!s.ok()) return s;
      s = layout->CommitBlob(temp, l.digest);
      if (!s.ok()) return s;
      Descriptor copy = l;
      // Docker's gzip layer type names the same bytes as OCI's.
      if (copy.media_type == kDockerLayerGzip) copy.media_type = kOciLayerGzip;
      copy.platform.reset();
      manifest.layers.push_back(std::move(copy));
    }
    manifest.annotations[kBaseDigestAnnotation] = req.base_digest;
    if (!req.base_name.empty()) {
      manifest.annotations[kBaseNameAnnotation] = req.base_name;
    }
  }

  BuiltImage built;
  LayerOptions options;
  options.compression = req.compression;
  options.mtime = req.created_epoch;
  options.workers = req.workers;
  for (const BuildLayer& layer : req.layers) {
    std::string temp;
    absl::StatusOr<cas::UniqueFd> fd = layout->NewBlobFile(&temp);
    if (!fd.ok()) return fd.status();
    absl::StatusOr<BuiltLayer> l = WriteLayer(layer.source, options, fd->get());
    if (!l.ok()) return l.status();
    absl::Status s = layout->CommitBlob(temp, l->descriptor.digest);
    if (!s.ok()) return s;
    built.layer_bytes += l->descriptor.size;
    manifest.layers.push_back(l->descriptor);
    config.diff_ids.push_back(l->diff_id);
    config.history.push_back(
        HistoryEntry{created, layer.created_by, "", false});
  }

  // Config changes.
  if (!req.entrypoint.empty()) {
    config.entrypoint = req.entrypoint;
    config.cmd.clear();
  }
  if (!req.cmd.empty()) config.cmd = req.cmd;
  for (const auto& [k, v] : req.env) SetEnv(&config.env, k, v);
  if (!req.workdir.empty()) config.working_dir = req.workdir;
  if (!req.user.empty()) config.user = req.user;
  for (const auto& [k, v] : req.labels) config.labels[k] = v;
  for (const std::string& p : req.exposed_ports) {
    absl::StatusOr<std::string> port = NormalizePort(p);
    if (!port.ok()) return port.status();
    config.exposed_ports.push_back(*port);
  }
  std::sort(config.exposed_ports.begin(), config.exposed_ports.end());
  config.exposed_ports.erase(
      std::unique(config.exposed_ports.begin(), config.exposed_ports.end()),
      config.exposed_ports.end());
  config.created = created;
  config.platform.os = req.platform.os;
  config.platform.architecture = req.platform.architecture;
  if (!req.platform.variant.empty()) {
    config.platform.variant = req.platform.variant;
  }
  if (req.layers.empty()) {
    config.history.push_back(
        HistoryEntry{created, "kiln containerize: config", "", true});
  }

  std::string config_json = ToJson(config);
  absl::StatusOr<std::string> config_digest = layout->PutBlob(config_json);
  if (!config_digest.ok()) return config_digest.status();
  manifest.config.media_type = kOciConfig;
  manifest.config.digest = *config_digest;
  manifest.config.size = static_cast<int64_t>(config_json.size());

  std::string manifest_json = ToJson(manifest);
  absl::StatusOr<std::string> manifest_digest = layout->PutBlob(manifest_json);
  if (!manifest_digest.ok()) return manifest_digest.status();
  Descriptor entry;
  entry.media_type = kOciManifest;
  entry.digest = *manifest_digest;
  entry.size = static_cast<int64_t>(manifest_json.size());
  if (!req.ref_name.empty()) {
    entry.annotations[kRefNameAnnotation] = req.ref_name;
  }
  absl::Status s = layout->WriteIndex({entry});
  if (!s.ok()) return s;

  built.manifest_digest = *manifest_digest;
  built.manifest_size = entry.size;
  built.config_digest = *config_digest;
  built.manifest = std::move(manifest);
  built.config = std::move(config);
  return built;
}

}  // namespace kiln::oci
