#include "engine/oci/layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_walk.h"
#include "engine/oci/gzip.h"

namespace kiln::oci {
namespace {

constexpr size_t kBlock = 512;
constexpr int64_t kMaxUstarSize = (int64_t{1} << 33) - 1;  // 11 octal digits
constexpr char kZeros[kBlock * 2] = {};
constexpr size_t kReadBytes = size_t{1} << 20;

using Sink = std::function<absl::Status(absl::string_view)>;

void PutOctal(char* field, size_t width, uint64_t value) {
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
}

std::string PaxRecord(absl::string_view key, absl::string_view value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + 1;
  while (absl::StrCat(len).size() + body != len) {
    len = absl::StrCat(len).size() + body;
  }
  return absl::StrCat(len, " ", key, "=", value, "\n");
}

bool SplitUstar(absl::string_view path, absl::string_view* prefix,
                absl::string_view* name) {
  if (path.size() <= 100) {
    *prefix = "";
    *name = path;
    return true;
  }
  for (size_t i = path.size() - 1; i > 0; --i) {
    if (path[i] != '/' || i > 155) continue;
    size_t rest = path.size() - i - 1;
    if (rest > 100 || rest == 0) return false;
    *prefix = path.substr(0, i);
    *name = path.substr(i + 1);
    return true;
  }
  return false;
}

// A tar writer with the layer's fixed owner and mtime.
class LayerTar {
 public:
  LayerTar(Sink sink, int64_t mtime) : sink_(std::move(sink)), mtime_(mtime) {}

  absl::Status Header(absl::string_view path, char type, uint32_t mode,
                      uint32_t uid, uint32_t gid, int64_t size,
                      absl::string_view link) {
    absl::string_view prefix, name;
    std::string pax;
    if (!SplitUstar(path, &prefix, &name)) {
      pax += PaxRecord("path", path);
      name = path.substr(0, 100);
      prefix = "";
    }
    if (link.size() > 100) pax += PaxRecord("linkpath", link);
    if (size > kMaxUstarSize) pax += PaxRecord("size", absl::StrCat(size));
    if (!pax.empty()) {
      absl::Status s = Raw("././@PaxHeader", 'x', 0644, 0, 0,
                           static_cast<int64_t>(pax.size()), "", "");
      if (!s.ok()) return s;
      pax.resize((pax.size() + kBlock - 1) / kBlock * kBlock, '\0');
      s = sink_(pax);
      if (!s.ok()) return s;
    }
    return Raw(name, type, mode, uid, gid, size, link.substr(0, 100), prefix);
  }

  absl::Status Pad(int64_t size) {
    size_t pad = (kBlock - static_cast<size_t>(size) % kBlock) % kBlock;
    return pad == 0 ? absl::OkStatus() : sink_(absl::string_view(kZeros, pad));
  }
  absl::Status Data(absl::string_view data) { return sink_(data); }
  absl::Status Finish() { return sink_(absl::string_view(kZeros, 2 * kBlock)); }

 private:
  absl::Status Raw(absl::string_view name, char type, uint32_t mode,
                   uint32_t uid, uint32_t gid, int64_t size,
                   absl::string_view link, absl::string_view prefix) {
    char h[kBlock] = {};
    std::memcpy(h, name.data(), std::min<size_t>(100, name.size()));
    PutOctal(h + 100, 8, mode);
    PutOctal(h + 108, 8, uid);
    PutOctal(h + 116, 8, gid);
    PutOctal(h + 124, 12,
             size > kMaxUstarSize ? 0 : static_cast<uint64_t>(size));
    PutOctal(h + 136, 12, static_cast<uint64_t>(mtime_));
    h[156] = type;
    std::memcpy(h + 157, link.data(), std::min<size_t>(100, link.size()));
    std::memcpy(h + 257,
                "ustar\0"
                "00",
                8);
    std::memcpy(h + 345, prefix.data(), std::min<size_t>(155, prefix.size()));
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (char c : h) sum += static_cast<unsigned char>(c);
    PutOctal(h + 148, 7, sum);
    h[155] = ' ';
    return sink_(absl::string_view(h, kBlock));
  }

  Sink sink_;
  int64_t mtime_;
};

// Hashes and writes the compressed blob.
struct BlobOut {
  explicit BlobOut(int out_fd) : fd(out_fd) {}
  int fd;
  cas::Sha256 hash;
  int64_t size = 0;
  absl::Status Write(absl::string_view data) {
    hash.Update(data);
    size += static_cast<int64_t>(data.size());
    return cas::WriteAll(fd, data, "layer blob");
  }
};

}  // namespace

absl::StatusOr<Compression> ParseCompression(absl::string_view text) {
  if (text.empty() || text == "gzip") return Compression::kGzip;
  if (text == "zstd") return Compression::kZstd;
  if (text == "none" || text == "uncompressed") return Compression::kNone;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown layer compression '", text, "' (known: gzip, zstd, none)"));
}

const char* LayerMediaType(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return kOciLayerGzip;
    case Compression::kZstd:
      return kOciLayerZstd;
    case Compression::kNone:
      return kOciLayerTar;
  }
  return kOciLayerTar;
}

absl::StatusOr<std::string> NormalizeImagePath(absl::string_view to) {
  if (to.empty() || to[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("'", to, "' is not an absolute directory in the image"));
  }
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(to, '/', absl::SkipEmpty())) {
    if (p == "." || p == ".." || p.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", to, "': a directory in the image may not contain '.' or '..'"));
    }
    parts.emplace_back(p);
  }
  return absl::StrJoin(parts, "/");
}

absl::StatusOr<BuiltLayer> WriteLayer(const LayerSource& source,
                                      const LayerOptions& options, int out_fd) {
  if (options.mtime < 0 || options.mtime > kMaxUstarSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer mtime ", options.mtime, " is out of range"));
  }
  if (source.file_mode > 0777) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer file mode ", absl::StrCat(absl::Hex(source.file_mode)),
        " is not within 0..0777"));
  }
  absl::StatusOr<std::string> to = NormalizeImagePath(source.to);
  if (!to.ok()) return to.status();
  // A fresh open file description of the root: walking reads directory
  // entries from its offset, and the caller's fd may have been walked
  // before (a second build from the same fd must see the whole tree).
  // (A dup would share the offset: open "." for a description of its own.)
  int fresh = openat(source.root_fd, ".",
                     O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fresh < 0) {
    return cas::ErrnoStatus(errno, absl::StrCat("open ", source.display));
  }
  cas::UniqueFd root(fresh);
  absl::StatusOr<std::vector<cas::WalkedEntry>> entries =
      cas::WalkTree(root.get(), source.display);
  if (!entries.ok()) return entries.status();

  BlobOut blob(out_fd);
  BuiltLayer built;
  std::unique_ptr<ParallelGzip> gzip;
  std::unique_ptr<archive::ZstdCompressor> zstd;
  Sink to_blob = [&blob](absl::string_view d) { return blob.Write(d); };
  Sink compress;
  switch (options.compression) {
    case Compression::kGzip:
      gzip = std::make_unique<ParallelGzip>(to_blob, options.workers);
      compress = [&gzip](absl::string_view d) { return gzip->Write(d); };
      break;
    case Compression::kZstd:
      zstd = std::make_unique<archive::ZstdCompressor>(
          to_blob, std::max(1, options.workers));
      compress = [&zstd](absl::string_view d) { return zstd->Write(d); };
      break;
    case Compression::kNone:
      compress = to_blob;
      break;
  }
  cas::Sha256 diff;
  LayerTar tar(
      [&](absl::string_view d) {
        diff.Update(d);
        built.tar_bytes += static_cast<int64_t>(d.size());
        return compress(d);
      },
      options.mtime);

  // The parents of `to` (root-owned), then `to` itself (the layer's owner).
  std::string prefix;
  if (!to->empty()) {
    std::vector<std::string> parts = absl::StrSplit(*to, '/');
    for (size_t i = 0; i < parts.size(); ++i) {
      prefix = i == 0 ? parts[0] : absl::StrCat(prefix, "/", parts[i]);
      bool last = i + 1 == parts.size();
      absl::Status s =
          tar.Header(absl::StrCat(prefix, "/"), '5', 0755,
                     last ? source.uid : 0, last ? source.gid : 0, 0, "");
      if (!s.ok()) return s;
    }
    prefix += "/";
  }
  std::string buf(kReadBytes, '\0');
  for (const cas::WalkedEntry& e : *entries) {
    std::string path = absl::StrCat(prefix, e.path);
    absl::Status s;
    switch (e.type) {
      case cas::EntryType::kDirectory:
        s = tar.Header(absl::StrCat(path, "/"), '5', 0755, source.uid,
                       source.gid, 0, "");
        break;
      case cas::EntryType::kSymlink:
        s = tar.Header(path, '2', 0777, source.uid, source.gid, 0,
                       e.link_target);
        break;
      case cas::EntryType::kFile: {
        absl::StatusOr<int> fd = cas::OpenFileBeneath(source.root_fd, e.path);
        if (!fd.ok()) return fd.status();
        cas::UniqueFd file(*fd);
        struct stat st;
        if (fstat(file.get(), &st) != 0) {
          return cas::ErrnoStatus(
              errno, absl::StrCat("stat ", source.display, "/", e.path));
        }
        if (!S_ISREG(st.st_mode)) {
          return absl::InvalidArgumentError(absl::StrCat(
              source.display, "/", e.path,
              " is no longer a regular file (it changed while being read)"));
        }
        const int64_t size = st.st_size;
        uint32_t mode = source.file_mode >= 0
                            ? static_cast<uint32_t>(source.file_mode)
                            : ((st.st_mode & 0100) ? 0755u : 0644u);
        s = tar.Header(path, '0', mode, source.uid, source.gid, size, "");
        if (!s.ok()) return s;
        int64_t left = size;
        for (;;) {
          absl::StatusOr<size_t> n =
              cas::ReadFull(file.get(), buf.data(), buf.size(),
                            absl::StrCat(source.display, "/", e.path));
          if (!n.ok()) return n.status();
          if (*n == 0) break;
          if (static_cast<int64_t>(*n) > left) {
            return absl::AbortedError(absl::StrCat(source.display, "/", e.path,
                                                   " grew while it was read"));
          }
          left -= static_cast<int64_t>(*n);
          s = tar.Data(absl::string_view(buf.data(), *n));
          if (!s.ok()) return s;
        }
        if (left != 0) {
          return absl::AbortedError(absl::StrCat(source.display, "/", e.path,
                                                 " shrank while it was read"));
        }
        s = tar.Pad(size);
        ++built.files;
        break;
      }
    }
    if (!s.ok()) return s;
  }
  absl::Status s = tar.Finish();
  if (s.ok() && gzip) s = gzip->Finish();
  if (s.ok() && zstd) s = zstd->Finish();
  if (!s.ok()) return s;
  built.diff_id = diff.Finish().ToString();
  built.descriptor.media_type = LayerMediaType(options.compression);
  built.descriptor.digest = blob.hash.Finish().ToString();
  built.descriptor.size = blob.size;
  return built;
}

}  // namespace kiln::oci
