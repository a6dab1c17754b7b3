#include "engine/oci/layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_walk.h"
#include "nlohmann/json.hpp"

namespace kiln::oci {
namespace {

constexpr size_t kReadBytes = size_t{1} << 20;
constexpr size_t kMaxLayoutFileBytes = 4096;  // oci-layout

// The hex of a "sha256:<64 lowercase hex>" digest, refusing anything else
// (a blob path is built from it: no '/' or ".." can get in).
absl::StatusOr<std::string> BlobHex(const std::string& digest) {
  absl::StatusOr<cas::Digest> d = cas::Digest::Parse(digest);
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", digest, "' is not a sha256 digest"));
  }
  return d->Hex();
}

// Opens a regular file beneath dir_fd without following a symlink.
absl::StatusOr<cas::UniqueFd> OpenRegular(int dir_fd, const std::string& rel,
                                          const std::string& shown,
                                          struct stat* st) {
  absl::StatusOr<int> fd = cas::OpenFileBeneath(dir_fd, rel);
  if (!fd.ok()) {
    if (fd.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat(shown, " is missing"));
    }
    if (absl::StrContains(fd.status().message(), "symbolic") ||
        absl::StrContains(fd.status().message(), "link")) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown,
                       " is (or passes through) a symlink, which an "
                       "OCI layout kiln reads may not contain"));
    }
    return absl::Status(fd.status().code(),
                        absl::StrCat(shown, ": ", fd.status().message()));
  }
  cas::UniqueFd file(*fd);
  if (fstat(file.get(), st) != 0) {
    return cas::ErrnoStatus(errno, absl::StrCat("stat ", shown));
  }
  if (!S_ISREG(st->st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, " is not a regular file"));
  }
  return file;
}

absl::StatusOr<std::string> ReadLimited(int dir_fd, const std::string& rel,
                                        const std::string& shown,
                                        size_t max_bytes) {
  struct stat st;
  absl::StatusOr<cas::UniqueFd> file = OpenRegular(dir_fd, rel, shown, &st);
  if (!file.ok()) return file.status();
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        shown, " is ", st.st_size, " bytes, over the limit of ", max_bytes));
  }
  // Sized from the stat (plus a byte to see growth), not from the limit:
  // most layout files are a few hundred bytes, the limit is megabytes. A
  // file that grew since the stat is read on, up to the limit.
  std::string out(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t have = 0;
  while (true) {
    absl::StatusOr<size_t> n =
        cas::ReadFull(file->get(), out.data() + have, out.size() - have, shown);
    if (!n.ok()) return n.status();
    have += *n;
    if (have > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(shown, " grew over the limit of ", max_bytes, " bytes"));
    }
    if (have < out.size()) break;  // end of file
    out.resize(std::min(out.size() * 2, max_bytes + 1));
  }
  out.resize(have);
  return out;
}

// The media type a manifest or index blob declares, else what its shape
// says it is.
std::string SniffMediaType(absl::string_view bytes) {
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
  if (!j.is_object()) return "";
  auto mt = j.find("mediaType");
  if (mt != j.end() && mt->is_string()) return mt->get<std::string>();
  if (j.contains("manifests")) return kOciIndex;
  if (j.contains("config") || j.contains("layers")) return kOciManifest;
  return "";
}

}  // namespace

// ---------------------------------------------------------------- writer

absl::StatusOr<LayoutWriter> LayoutWriter::Create(int parent_fd,
                                                  const std::string& name) {
  absl::StatusOr<cas::UniqueFd> dir = cas::MakeDirAt(parent_fd, name, 0755);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<cas::UniqueFd> blobs = cas::MakeDirAt(dir->get(), "blobs");
  if (!blobs.ok()) return blobs.status();
  absl::StatusOr<cas::UniqueFd> sha = cas::MakeDirAt(blobs->get(), "sha256");
  if (!sha.ok()) return sha.status();
  LayoutWriter w(*std::move(dir), *std::move(sha));
  int fd = openat(w.dir_.get(), "oci-layout",
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return cas::ErrnoStatus(errno, "create oci-layout");
  cas::UniqueFd f(fd);
  if (fchmod(fd, 0644) != 0) return cas::ErrnoStatus(errno, "chmod oci-layout");
  absl::Status s = cas::WriteAll(fd, kLayoutVersionJson, "oci-layout");
  if (!s.ok()) return s;
  return w;
}

absl::StatusOr<cas::UniqueFd> LayoutWriter::NewBlobFile(
    std::string* temp_name) {
  *temp_name = absl::StrCat(".tmp-", next_temp_++);
  int fd = openat(blobs_.get(), temp_name->c_str(),
                  O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return cas::ErrnoStatus(errno, "create a layout blob");
  // Blob modes do not depend on the umask (the artifact records modes).
  if (fchmod(fd, 0644) != 0) {
    int err = errno;
    close(fd);
    return cas::ErrnoStatus(err, "chmod a layout blob");
  }
  return cas::UniqueFd(fd);
}

absl::Status LayoutWriter::CommitBlob(const std::string& temp_name,
                                      const std::string& digest) {
  absl::StatusOr<std::string> hex = BlobHex(digest);
  if (!hex.ok()) return hex.status();
  absl::Status s =
      cas::RenameNoReplace(blobs_.get(), temp_name, blobs_.get(), *hex);
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    // The same content twice (e.g. two identical layers): keep one.
    if (unlinkat(blobs_.get(), temp_name.c_str(), 0) != 0) {
      return cas::ErrnoStatus(errno, "remove a duplicate layout blob");
    }
    return absl::OkStatus();
  }
  return s;
}

absl::StatusOr<std::string> LayoutWriter::PutBlob(absl::string_view bytes) {
  std::string temp;
  absl::StatusOr<cas::UniqueFd> fd = NewBlobFile(&temp);
  if (!fd.ok()) return fd.status();
  absl::Status s = cas::WriteAll(fd->get(), bytes, "layout blob");
  if (!s.ok()) return s;
  std::string digest = cas::Digest::Of(bytes).ToString();
  s = CommitBlob(temp, digest);
  if (!s.ok()) return s;
  return digest;
}

absl::Status LayoutWriter::WriteIndex(
    const std::vector<Descriptor>& manifests) {
  Index index;
  index.media_type = kOciIndex;
  index.manifests = manifests;
  std::string json = ToJson(index);
  int fd = openat(dir_.get(), "index.json",
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return cas::ErrnoStatus(errno, "create index.json");
  cas::UniqueFd f(fd);
  if (fchmod(fd, 0644) != 0) return cas::ErrnoStatus(errno, "chmod index.json");
  return cas::WriteAll(fd, json, "index.json");
}

// ---------------------------------------------------------------- source

absl::StatusOr<std::unique_ptr<LayoutSource>> LayoutSource::Open(
    int dir_fd, std::string display) {
  int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return cas::ErrnoStatus(errno, "dup a layout directory");
  std::unique_ptr<LayoutSource> source(
      new LayoutSource(cas::UniqueFd(fd), std::move(display)));
  absl::StatusOr<std::string> version = ReadLimited(
      source->dir_.get(), "oci-layout",
      absl::StrCat(source->Describe(), ": oci-layout"), kMaxLayoutFileBytes);
  if (!version.ok()) return version.status();
  nlohmann::json j = nlohmann::json::parse(*version, nullptr, false);
  if (!j.is_object() || !j.contains("imageLayoutVersion") ||
      !j["imageLayoutVersion"].is_string() ||
      j["imageLayoutVersion"].get<std::string>() != "1.0.0") {
    return absl::InvalidArgumentError(
        absl::StrCat(source->Describe(),
                     ": oci-layout does not declare imageLayoutVersion 1.0.0"));
  }
  return source;
}

std::string LayoutSource::Describe() const {
  return absl::StrCat("OCI layout '", display_, "'");
}

absl::StatusOr<std::string> LayoutSource::ReadIndexJson() {
  return ReadLimited(dir_.get(), "index.json",
                     absl::StrCat(Describe(), ": index.json"),
                     kMaxManifestBytes);
}

absl::Status LayoutSource::StreamBlob(
    const std::string& digest, int64_t size, size_t max_bytes,
    const std::function<absl::Status(absl::string_view)>& consume) {
  absl::StatusOr<std::string> hex = BlobHex(digest);
  if (!hex.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": ", hex.status().message()));
  }
  std::string shown = absl::StrCat(Describe(), ": blob ", digest);
  struct stat st;
  absl::StatusOr<cas::UniqueFd> file =
      OpenRegular(dir_.get(), absl::StrCat("blobs/sha256/", *hex), shown, &st);
  if (!file.ok()) return file.status();
  if (size >= 0 && st.st_size != size) {
    return absl::DataLossError(absl::StrCat(
        shown, " is ", st.st_size, " bytes, its descriptor says ", size));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        shown, " is ", st.st_size, " bytes, over the limit of ", max_bytes));
  }
  cas::Sha256 hash;
  std::string buf(kReadBytes, '\0');
  uint64_t total = 0;
  for (;;) {
    absl::StatusOr<size_t> n =
        cas::ReadFull(file->get(), buf.data(), buf.size(), shown);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    total += *n;
    if (total > max_bytes ||
        (size >= 0 && total > static_cast<uint64_t>(size))) {
      return absl::DataLossError(
          absl::StrCat(shown, " grew while it was read"));
    }
    absl::string_view chunk(buf.data(), *n);
    hash.Update(chunk);
    absl::Status s = consume(chunk);
    if (!s.ok()) return s;
  }
  cas::Digest got = hash.Finish();
  if (got.ToString() != digest) {
    return absl::DataLossError(absl::StrCat(shown, " does not match its digest",
                                            " (its content is ", got.ToString(),
                                            ")"));
  }
  if (size >= 0 && static_cast<int64_t>(total) != size) {
    return absl::DataLossError(absl::StrCat(
        shown, " is ", total, " bytes, its descriptor says ", size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LayoutSource::ReadBlob(const Descriptor& blob,
                                                   size_t max_bytes) {
  std::string out;
  absl::Status s = StreamBlob(blob.digest, blob.size, max_bytes,
                              [&out](absl::string_view d) {
                                out.append(d.data(), d.size());
                                return absl::OkStatus();
                              });
  if (!s.ok()) return s;
  return out;
}

absl::Status LayoutSource::FetchBlob(const Descriptor& blob, int out_fd) {
  return StreamBlob(blob.digest, blob.size, UINT64_MAX,
                    [&](absl::string_view d) {
                      return cas::WriteAll(out_fd, d, "a fetched blob");
                    });
}

absl::StatusOr<FetchedManifest> LayoutSource::GetManifest(
    const std::string& tag_or_digest) {
  absl::StatusOr<std::string> index_json = ReadIndexJson();
  if (!index_json.ok()) return index_json.status();
  absl::StatusOr<Index> index = ParseIndex(*index_json);
  if (!index.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), ": index.json: ", index.status().message()));
  }
  if (tag_or_digest.empty()) {
    return FetchedManifest{*index_json, kOciIndex,
                           cas::Digest::Of(*index_json).ToString()};
  }
  Descriptor want;
  if (absl::StartsWith(tag_or_digest, "sha256:")) {
    want.digest = tag_or_digest;
    want.size = -1;
    for (const Descriptor& d : index->manifests) {
      if (d.digest == tag_or_digest) want = d;
    }
  } else {
    std::vector<std::string> tags;
    int found = 0;
    for (const Descriptor& d : index->manifests) {
      auto it = d.annotations.find(kRefNameAnnotation);
      if (it == d.annotations.end()) continue;
      tags.push_back(it->second);
      if (it->second == tag_or_digest) {
        want = d;
        ++found;
      }
    }
    if (found == 0) {
      return absl::NotFoundError(absl::StrCat(
          Describe(), " has no image tagged '", tag_or_digest,
          "' (tags: ", tags.empty() ? "none" : absl::StrJoin(tags, ", "), ")"));
    }
    if (found > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(), " names ", found, " images '", tag_or_digest,
                       "'; ask for one by digest"));
    }
  }
  absl::StatusOr<std::string> bytes = ReadBlob(want, kMaxManifestBytes);
  if (!bytes.ok()) return bytes.status();
  std::string media_type =
      want.media_type.empty() ? SniffMediaType(*bytes) : want.media_type;
  if (!IsManifestMediaType(media_type) && !IsIndexMediaType(media_type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(), ": ", want.digest, " is not an image manifest or index (",
        media_type.empty() ? "no media type" : media_type, ")"));
  }
  return FetchedManifest{*std::move(bytes), media_type, want.digest};
}

}  // namespace kiln::oci
