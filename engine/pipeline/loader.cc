#include "engine/pipeline/loader.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/cas/digest.h"
#include "engine/pipeline/decode.h"
#include "engine/pipeline/factory_refs.h"
#include "engine/pipeline/validate.h"
#include "engine/yaml/parse.h"

namespace kiln::pipeline {
namespace {

// Turns an //engine/yaml status ("FILE:LINE:COL: text" or "FILE: text") into
// a diagnostic; file-level problems are placed at 1:1.
Diagnostic StatusToDiagnostic(const absl::Status& status,
                              absl::string_view file) {
  Diagnostic d;
  d.file = std::string(file);
  d.line = 1;
  d.column = 1;
  absl::string_view text = status.message();
  std::string prefix = absl::StrCat(file, ":");
  if (absl::StartsWith(text, prefix)) text.remove_prefix(prefix.size());
  // Optional "LINE:COL:".
  std::vector<absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits(':', 2));
  int line = 0, column = 0;
  if (parts.size() == 3 && absl::SimpleAtoi(parts[0], &line) &&
      absl::SimpleAtoi(parts[1], &column) && line > 0) {
    d.line = line;
    d.column = column;
    text = parts[2];
  }
  d.message = std::string(absl::StripLeadingAsciiWhitespace(text));
  return d;
}

std::string DirName(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

}  // namespace

LoadedPipeline LoadPipelineText(absl::string_view text,
                                absl::string_view filename,
                                const LoadOptions& options) {
  LoadedPipeline out;
  out.file = std::string(filename);
  out.base_dir = DirName(filename);
  auto map = std::make_shared<SourceMap>(out.file);
  out.source_map = map;

  yaml::Limits limits;
  limits.max_bytes = options.max_file_bytes;
  limits.max_depth = options.max_depth;
  limits.max_nodes = options.max_nodes;
  limits.max_alias_nodes = options.max_alias_nodes;
  limits.max_scalar_bytes = options.max_scalar_bytes;
  limits.allow_aliases = true;  // expanded within max_nodes
  absl::StatusOr<yaml::Node> root = yaml::Parse(text, filename, limits);
  if (!root.ok()) {
    out.errors.push_back(StatusToDiagnostic(root.status(), filename));
    return out;
  }
  internal::Decoder decoder(map.get(), &out.errors);
  internal::DecodePipeline(&decoder, *root, &out.pipeline);
  // Relative to base_dir: the file's own name.
  size_t slash = out.file.rfind('/');
  out.pipeline.set_file(
      slash == std::string::npos ? out.file : out.file.substr(slash + 1));
  std::stable_sort(out.errors.begin(), out.errors.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::make_pair(a.line, a.column) <
                            std::make_pair(b.line, b.column);
                   });
  if (out.errors.empty() && options.validate) {
    ExecCapabilities caps;
    caps.images = options.images_supported;
    out.errors =
        ValidatePipeline(out.pipeline, map.get(), caps, &out.validation);
  }
  return out;
}

namespace {

// The GNU build id of the loaded object that holds this code (kiln's binary,
// or libkiln): part of every decode-cache key, so entries a differently
// built decoder wrote are never read. "" when it has none (then no cache).
std::string BuildIdOfThisCode() {
  struct Search {
    uintptr_t code;
    std::string id;
  } search{reinterpret_cast<uintptr_t>(&BuildIdOfThisCode), ""};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) -> int {
        auto* s = static_cast<Search*>(arg);
        bool ours = false;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type == PT_LOAD && s->code >= start &&
              s->code < start + ph.p_memsz) {
            ours = true;
          }
        }
        if (!ours) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          const char* p =
              reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
          const char* end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            ElfW(Nhdr) n;
            std::memcpy(&n, p, sizeof n);
            const char* name = p + sizeof n;
            const char* desc = name + ((n.n_namesz + 3) & ~3u);
            const char* next = desc + ((n.n_descsz + 3) & ~3u);
            if (next > end) break;
            if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0 && n.n_descsz > 0) {
              s->id.assign(desc, n.n_descsz);
              return 1;
            }
            p = next;
          }
        }
        return 1;  // ours, without a build id
      },
      &search);
  return search.id;
}

// Every input of the decoding, each length-prefixed.
std::string DecodeKey(const std::string& build_id, absl::string_view text,
                      absl::string_view filename, const LoadOptions& o) {
  cas::Sha256 h;
  auto add = [&h](absl::string_view field) {
    uint64_t n = field.size();
    h.Update(&n, sizeof n);
    h.Update(field);
  };
  add("kiln decoded pipeline v1");
  add(build_id);
  add(absl::StrCat(o.max_file_bytes, " ", o.max_depth, " ", o.max_nodes, " ",
                   o.max_alias_nodes, " ", o.max_scalar_bytes));
  add(filename);
  add(text);
  return h.Finish().Hex();
}

constexpr size_t kDecodeCacheEntries = 64;
constexpr size_t kChecksumBytes = cas::Digest::kHashBytes;

// What an entry records of the validation of its pipeline, besides the
// pipeline itself: whether it found nothing at all (no error, no warning),
// and with which capabilities.
enum class Validated : char {
  kNo = '0',             // not validated, or it reported something
  kCleanNoImages = '1',  // clean, run.image refused
  kClean = '2',          // clean, run.image accepted
};

Validated ValidatedFor(const LoadOptions& options) {
  return options.images_supported ? Validated::kClean
                                  : Validated::kCleanNoImages;
}

// The cached decoding of `key`: a SHA-256 of the rest, then one byte
// (Validated), then the pipeline (a torn write, which a power loss can
// leave, fails the checksum).
bool ReadDecoded(const std::string& entry, size_t max_bytes, v1::Pipeline* out,
                 Validated* validated) {
  absl::StatusOr<std::string> bytes = yaml::ReadFileCapped(entry, max_bytes);
  if (!bytes.ok() || bytes->size() < kChecksumBytes + 1) return false;
  absl::string_view payload = absl::string_view(*bytes).substr(kChecksumBytes);
  const cas::Digest sum = cas::Digest::Of(payload);
  if (std::memcmp(bytes->data(), sum.hash().data(), kChecksumBytes) != 0) {
    return false;
  }
  *validated = static_cast<Validated>(payload[0]);
  payload.remove_prefix(1);
  return out->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
}

// Best effort: a cache that cannot be written only costs the next decoding.
void WriteDecoded(const std::string& dir, const std::string& key,
                  const v1::Pipeline& pipeline, Validated validated) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return;
  std::string payload(1, static_cast<char>(validated));
  if (!pipeline.AppendToString(&payload)) return;
  const cas::Digest sum = cas::Digest::Of(payload);
  std::string bytes(reinterpret_cast<const char*>(sum.hash().data()),
                    kChecksumBytes);
  bytes += payload;
  std::string temp = absl::StrCat(dir, "/.tmp-", key, "-", getpid());
  int fd = open(temp.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  bool ok = true;
  for (size_t done = 0; ok && done < bytes.size();) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = close(fd) == 0 && ok;
  if (!ok || rename(temp.c_str(), (dir + "/" + key).c_str()) != 0) {
    unlink(temp.c_str());
    return;
  }
  // Keep the newest kDecodeCacheEntries (and drop dead writers' temps).
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::pair<int64_t, std::string>> entries;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                    st.st_mtim.tv_nsec;
    if (name.rfind(".tmp-", 0) == 0) {
      // Another writer's, unless it is old enough to be a leftover.
      if (time(nullptr) - st.st_mtim.tv_sec > 3600) {
        unlinkat(dirfd(d), name.c_str(), 0);
      }
      continue;
    }
    entries.emplace_back(mtime, std::move(name));
  }
  if (entries.size() > kDecodeCacheEntries) {
    std::sort(entries.begin(), entries.end());
    for (size_t i = 0; i + kDecodeCacheEntries < entries.size(); ++i) {
      unlinkat(dirfd(d), entries[i].second.c_str(), 0);
    }
  }
  closedir(d);
}

// What LoadPipelineFile adds to LoadPipelineText, on any loaded pipeline.
void CheckFile(const LoadOptions& options, LoadedPipeline* out) {
  // What a preview's `factory:` names, relative to this file.
  if (out->ok() && options.validate) {
    CheckFactoryRefs(out->pipeline, out->base_dir, out->source_map.get(),
                     &out->errors);
    if (!out->ok()) out->validation.reset();
  }
}

}  // namespace

LoadedPipeline LoadPipelineFile(const std::string& path,
                                const LoadOptions& options) {
  absl::StatusOr<std::string> text =
      yaml::ReadFileCapped(path, options.max_file_bytes);
  if (!text.ok()) {
    LoadedPipeline out;
    out.file = path;
    out.base_dir = DirName(path);
    out.source_map = std::make_shared<SourceMap>(path);
    out.errors.push_back(StatusToDiagnostic(text.status(), path));
    return out;
  }
  std::string build_id;
  std::string key;
  std::string entry;
  if (!options.decode_cache_dir.empty()) {
    static const std::string* const id = new std::string(BuildIdOfThisCode());
    build_id = *id;
  }
  if (!build_id.empty()) {
    key = DecodeKey(build_id, *text, path, options);
    entry = absl::StrCat(options.decode_cache_dir, "/", key);
    LoadedPipeline out;
    Validated validated = Validated::kNo;
    if (ReadDecoded(entry, 4 * options.max_file_bytes + kChecksumBytes + 1,
                    &out.pipeline, &validated)) {
      out.from_cache = true;
      out.file = path;
      out.base_dir = DirName(path);
      LoadOptions decode = options;
      decode.validate = false;
      decode.decode_cache_dir.clear();
      out.source_map =
          SourceMap::Deferred(path, [text = *std::move(text), path, decode]() {
            return LoadPipelineText(text, path, decode).source_map;
          });
      if (options.validate && validated == ValidatedFor(options)) {
        // This build validated these bytes clean, with these capabilities.
        out.validation = internal::ValidatedBefore(out.pipeline);
      } else if (options.validate) {
        ExecCapabilities caps;
        caps.images = options.images_supported;
        out.errors = ValidatePipeline(out.pipeline, out.source_map.get(), caps,
                                      &out.validation);
      }
      CheckFile(options, &out);
      return out;
    }
  }
  LoadedPipeline out = LoadPipelineText(*text, path, options);
  // Only a clean decoding is kept (a file with errors is not the hot path).
  if (!key.empty() && out.ok()) {
    WriteDecoded(options.decode_cache_dir, key, out.pipeline,
                 options.validate && out.validation != nullptr
                     ? ValidatedFor(options)
                     : Validated::kNo);
  }
  CheckFile(options, &out);
  return out;
}

}  // namespace kiln::pipeline
