#include "engine/cas/tree_archive.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/archive/chunk_pipe.h"
#include "engine/archive/tar_writer.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/file_io.h"

namespace kiln::cas {
namespace {

constexpr size_t kReadChunk = 1 << 20;
// Trees whose files total at most this are archived on the calling thread.
constexpr int64_t kInlineBytes = 1 << 20;

int64_t TotalFileBytes(const std::vector<WalkedEntry>& walked) {
  int64_t total = 0;
  for (const WalkedEntry& w : walked) {
    if (w.type == EntryType::kFile) total += w.stat.size;
  }
  return total;
}

int64_t LargestFile(const std::vector<WalkedEntry>& walked) {
  int64_t largest = 0;
  for (const WalkedEntry& w : walked) {
    if (w.type == EntryType::kFile) largest = std::max(largest, w.stat.size);
  }
  return largest;
}

// Reads one file into the archive, hashing it; fails if the file is not the
// one the walk saw, or changes while being read.
absl::StatusOr<Digest> ArchiveFile(int root_fd, const std::string& display,
                                   const WalkedEntry& e,
                                   archive::TarWriter* tar, std::string* buf) {
  absl::StatusOr<int> fd = OpenFileBeneath(root_fd, e.path);
  if (!fd.ok()) return fd.status();
  auto changed = [&](absl::string_view how) {
    close(*fd);
    return absl::FailedPreconditionError(absl::StrCat(
        display, "/", e.path, " changed while being stashed (", how, ")"));
  };
  struct stat before;
  if (fstat(*fd, &before) != 0 || !S_ISREG(before.st_mode)) {
    return changed("no longer a regular file");
  }
  if (FileStat::From(before) != e.stat) return changed("stat differs");
  bool executable = (e.stat.mode & S_IXUSR) != 0;
  absl::Status st = tar->BeginFile(e.path, e.stat.size, executable);
  if (!st.ok()) {
    close(*fd);
    return st;
  }
  Sha256 hasher;
  int64_t remaining = e.stat.size;
  while (remaining > 0) {
    size_t want = static_cast<size_t>(
        std::min<int64_t>(remaining, static_cast<int64_t>(buf->size())));
    absl::StatusOr<size_t> n = ReadFull(*fd, buf->data(), want, e.path);
    if (!n.ok()) {
      close(*fd);
      return n.status();
    }
    if (*n < want) return changed("shrank");
    absl::string_view data(buf->data(), *n);
    hasher.Update(data);
    st = tar->FileData(data);
    if (!st.ok()) {
      close(*fd);
      return st;
    }
    remaining -= static_cast<int64_t>(*n);
  }
  char extra;
  absl::StatusOr<size_t> more = ReadFull(*fd, &extra, 1, e.path);
  if (!more.ok() || *more != 0) return changed("grew");
  struct stat after;
  if (fstat(*fd, &after) != 0 || FileStat::From(after) != e.stat) {
    return changed("modified during the read");
  }
  close(*fd);
  st = tar->EndFile();
  if (!st.ok()) return st;
  return hasher.Finish();
}

}  // namespace

absl::StatusOr<std::vector<TreeEntry>> WriteTreeArchive(
    int root_fd, const std::string& display,
    const std::vector<WalkedEntry>& walked, int compression_workers,
    const ArchiveSink& sink,
    const std::function<void(size_t, const Digest&)>& on_file) {
  std::vector<TreeEntry> tree;
  tree.reserve(walked.size());
  for (const WalkedEntry& w : walked) {
    TreeEntry t;
    t.path = w.path;
    t.type = w.type;
    t.link_target = w.link_target;
    if (w.type == EntryType::kFile) t.executable = (w.stat.mode & S_IXUSR) != 0;
    tree.push_back(std::move(t));
  }
  // Reads and hashes the files into a tar stream written to `out`.
  auto produce = [&](const archive::TarWriter::Sink& out) {
    archive::TarWriter tar(out);
    std::string buf(static_cast<size_t>(std::min<int64_t>(
                        kReadChunk, std::max<int64_t>(1, LargestFile(walked)))),
                    '\0');
    absl::Status st;
    for (size_t i = 0; i < walked.size() && st.ok(); ++i) {
      const WalkedEntry& w = walked[i];
      switch (w.type) {
        case EntryType::kDirectory:
          st = tar.AddDirectory(w.path);
          break;
        case EntryType::kSymlink:
          st = tar.AddSymlink(w.path, w.link_target);
          break;
        case EntryType::kFile: {
          absl::StatusOr<Digest> d =
              ArchiveFile(root_fd, display, w, &tar, &buf);
          if (!d.ok()) {
            st = d.status();
            break;
          }
          tree[i].digest = *d;
          if (on_file) on_file(i, *d);
          break;
        }
      }
    }
    if (st.ok()) st = tar.Finish();
    return st;
  };
  archive::ZstdCompressor zstd(sink, std::max(1, compression_workers));
  if (TotalFileBytes(walked) <= kInlineBytes) {
    // Small trees (a task's one output file, say) on this thread: a
    // producer thread would cost more than it overlaps. The compressed
    // bytes do not depend on how the tar stream reaches zstd.
    absl::Status st =
        produce([&zstd](absl::string_view b) { return zstd.Write(b); });
    if (!st.ok()) return st;
    st = zstd.Finish();
    if (!st.ok()) return st;
    return tree;
  }
  // A producer thread reads and hashes the files into a tar stream; this
  // thread compresses it (zstd worker threads) into the sink.
  archive::ChunkPipe pipe;
  absl::Status produced;
  std::thread producer([&] {
    produced = produce([&pipe](absl::string_view b) { return pipe.Write(b); });
    pipe.Close(produced);
  });
  absl::Status st;
  while (true) {
    absl::StatusOr<absl::string_view> chunk = pipe.Next();
    if (!chunk.ok()) {
      st = chunk.status();
      break;
    }
    if (chunk->empty()) break;
    st = zstd.Write(*chunk);
    if (!st.ok()) {
      pipe.Abandon(st);
      break;
    }
  }
  producer.join();
  if (!produced.ok()) return produced;  // the precise cause
  if (!st.ok()) return st;
  st = zstd.Finish();
  if (!st.ok()) return st;
  return tree;
}

}  // namespace kiln::cas
