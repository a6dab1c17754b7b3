// ArtifactStore: many archives' presence at once, for a whole-run replay
// (engine/run_replay.h): each shard directory of the index and of the blob
// store stamped, and an unchanged one's entries not looked at again.
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/beneath.h"

namespace kiln::cas {

namespace {

int64_t Nanos(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// "index/ab" -> <store>/artifacts/ab, "blobs/ab" -> <cas>/sha256/ab; ""
// for anything else.
std::string ShardDir(absl::string_view shard, const std::string& store_dir,
                     const std::string& blob_root) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(shard, absl::MaxSplits('/', 1));
  if (parts.second.size() != 2 ||
      parts.second.find_first_not_of("0123456789abcdef") !=
          absl::string_view::npos) {
    return "";
  }
  if (parts.first == "index") {
    return absl::StrCat(store_dir, "/artifacts/", parts.second);
  }
  if (parts.first == "blobs") {
    return absl::StrCat(blob_root, "/sha256/", parts.second);
  }
  return "";
}

// Which bytes are lowercase hex digits (a replay checks 40,000 digests).
struct LowerHexTable {
  bool is[256] = {};
  constexpr LowerHexTable() {
    for (int c = '0'; c <= '9'; ++c) is[c] = true;
    for (int c = 'a'; c <= 'f'; ++c) is[c] = true;
  }
};
constexpr LowerHexTable kLowerHex;

// The 64 hex digits of "sha256:<hex>"; "" when it is not one.
absl::string_view HexOf(absl::string_view digest) {
  if (!absl::ConsumePrefix(&digest, "sha256:") || digest.size() != 64) {
    return "";
  }
  bool all = true;
  for (char c : digest) all &= kLowerHex.is[static_cast<unsigned char>(c)];
  return all ? digest : "";
}

// Which of the 256 shards ("00".."ff") under `prefix` ("index/") are in
// `shards`.
std::vector<bool> ShardSet(const absl::flat_hash_set<std::string>& shards,
                           absl::string_view prefix) {
  std::vector<bool> set(256, false);
  for (absl::string_view shard : shards) {
    int value;
    if (absl::ConsumePrefix(&shard, prefix) && shard.size() == 2 &&
        absl::SimpleHexAtoi(shard, &value) && value >= 0 && value < 256) {
      set[value] = true;
    }
  }
  return set;
}

int ShardOf(absl::string_view hex) {
  auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  return digit(hex[0]) * 16 + digit(hex[1]);
}

}  // namespace

std::vector<std::string> ArtifactStore::ShardsOf(
    absl::Span<const RecordedArchive> entries) const {
  std::vector<bool> index(256, false);
  std::vector<bool> blobs(256, false);
  for (const RecordedArchive& e : entries) {
    absl::string_view tree = HexOf(e.tree);
    absl::string_view archive = HexOf(e.archive);
    if (!tree.empty()) index[ShardOf(tree)] = true;
    if (!archive.empty()) blobs[ShardOf(archive)] = true;
  }
  // Sorted: "blobs/.." before "index/..", each by its two digits.
  std::vector<std::string> out;
  for (const auto& [prefix, set] :
       {std::make_pair("blobs/", &blobs), std::make_pair("index/", &index)}) {
    for (int shard = 0; shard < 256; ++shard) {
      if ((*set)[shard]) {
        out.push_back(absl::StrCat(prefix, absl::Hex(shard, absl::kZeroPad2)));
      }
    }
  }
  return out;
}

std::vector<ArtifactStore::ShardStamp> ArtifactStore::ShardStamps(
    const std::vector<std::string>& shards, absl::Duration settle) const {
  std::vector<ShardStamp> stamps;
  const int64_t settled = absl::ToUnixNanos(absl::Now() - settle);
  for (const std::string& shard : shards) {
    std::string dir = ShardDir(shard, store_dir_, blobs_->root());
    struct stat st;
    if (dir.empty() || lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      continue;
    }
    if (Nanos(st.st_mtim) >= settled || Nanos(st.st_ctim) >= settled) {
      continue;
    }
    stamps.push_back(ShardStamp{shard, static_cast<uint64_t>(st.st_ino),
                                Nanos(st.st_mtim), Nanos(st.st_ctim)});
  }
  return stamps;
}

absl::flat_hash_set<std::string> ArtifactStore::UnchangedShards(
    absl::Span<const ShardStamp> stamps) const {
  absl::flat_hash_set<std::string> unchanged;
  for (const ShardStamp& s : stamps) {
    std::string dir = ShardDir(s.shard, store_dir_, blobs_->root());
    struct stat st;
    if (dir.empty() || lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        static_cast<uint64_t>(st.st_ino) != s.ino ||
        Nanos(st.st_mtim) != s.mtime_ns || Nanos(st.st_ctim) != s.ctime_ns) {
      continue;
    }
    unchanged.insert(s.shard);
  }
  return unchanged;
}

bool ArtifactStore::HasIndexedArchives(
    absl::Span<const RecordedArchive> entries,
    const absl::flat_hash_set<std::string>& unchanged_shards) const {
  // The index and blob roots opened once (never through a symlink); each
  // entry is reached relative to them ("ab/cdef...", no symlink followed).
  auto open_dir = [](const std::string& path) {
    return UniqueFd(
        open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  };
  UniqueFd index_root = open_dir(absl::StrCat(store_dir_, "/artifacts"));
  UniqueFd blob_root = open_dir(absl::StrCat(blobs_->root(), "/sha256"));
  if (!index_root.valid() || !blob_root.valid()) return entries.empty();
  const std::vector<bool> index_unchanged =
      ShardSet(unchanged_shards, "index/");
  const std::vector<bool> blob_unchanged = ShardSet(unchanged_shards, "blobs/");
  // "ab/" + the other 62 digits.
  auto relative = [](absl::string_view hex, char(&path)[66]) {
    path[0] = hex[0];
    path[1] = hex[1];
    path[2] = '/';
    memcpy(path + 3, hex.data() + 2, 62);
    path[65] = '\0';
  };
  char buf[kMaxRecordBytes + 1];
  char path[66];
  for (const RecordedArchive& e : entries) {
    absl::string_view tree_hex = HexOf(e.tree);
    absl::string_view archive_hex = HexOf(e.archive);
    if (tree_hex.empty() || archive_hex.empty()) return false;
    if (!index_unchanged[ShardOf(tree_hex)]) {
      relative(tree_hex, path);
      UniqueFd fd(openat(index_root.get(), path,
                         O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
      if (!fd.valid()) return false;
      ssize_t n;
      do {
        n = read(fd.get(), buf, sizeof(buf));
      } while (n < 0 && errno == EINTR);
      if (n < 0 || static_cast<size_t>(n) > kMaxRecordBytes) return false;
      absl::StatusOr<Digest> tree = Digest::Parse(e.tree);
      absl::StatusOr<Digest> archive = Digest::Parse(e.archive);
      if (!tree.ok() || !archive.ok()) return false;
      absl::StatusOr<Digest> indexed =
          ParseIndexEntry(*tree, absl::string_view(buf, n));
      if (!indexed.ok() || !(*indexed == *archive) ||
          indexed->size() != e.size) {
        return false;
      }
    }
    if (blob_unchanged[ShardOf(archive_hex)]) continue;
    relative(archive_hex, path);
    struct stat st;
    if (fstatat(blob_root.get(), path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) ||
        (e.size != Digest::kUnknownSize && e.size != st.st_size)) {
      return false;
    }
  }
  return true;
}

}  // namespace kiln::cas
