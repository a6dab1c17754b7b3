#include "engine/archive/tar_writer.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace kiln::archive {
namespace {

constexpr size_t kBlock = 512;
constexpr int64_t kMaxUstarSize = (int64_t{1} << 33) - 1;  // 11 octal digits
constexpr char kZeros[kBlock * 2] = {};

void PutOctal(char* field, size_t width, uint64_t value) {
  // width-1 digits, then NUL.
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
}

void PutString(char* field, size_t width, absl::string_view s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

// One pax record "<len> key=value\n", where len counts the whole record.
std::string PaxRecord(absl::string_view key, absl::string_view value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + 1;
  while (absl::StrCat(len).size() + body != len) {
    len = absl::StrCat(len).size() + body;
  }
  return absl::StrCat(len, " ", key, "=", value, "\n");
}

// Splits `path` into ustar prefix (<=155) and name (<=100); false if it
// cannot be split.
bool SplitUstar(absl::string_view path, absl::string_view* prefix,
                absl::string_view* name) {
  if (path.size() <= 100) {
    *prefix = "";
    *name = path;
    return true;
  }
  for (size_t i = path.size() - 1; i > 0; --i) {
    if (path[i] != '/') continue;
    if (i > 155) continue;
    if (path.size() - i - 1 > 100) return false;
    if (path.size() - i - 1 == 0) return false;
    *prefix = path.substr(0, i);
    *name = path.substr(i + 1);
    return true;
  }
  return false;
}

}  // namespace

absl::Status TarWriter::WriteHeader(absl::string_view path, char type, int mode,
                                    int64_t size, absl::string_view link) {
  if (file_remaining_ >= 0) {
    return absl::FailedPreconditionError("previous file not finished");
  }
  absl::string_view prefix, name;
  bool fits = SplitUstar(path, &prefix, &name);
  std::string pax;
  if (!fits) {
    pax += PaxRecord("path", path);
    name = path.substr(0, 100);
    prefix = "";
  }
  if (link.size() > 100) pax += PaxRecord("linkpath", link);
  if (size > kMaxUstarSize) pax += PaxRecord("size", absl::StrCat(size));
  if (!pax.empty()) {
    absl::Status st = WriteHeader("././@PaxHeader", 'x', 0644,
                                  static_cast<int64_t>(pax.size()), "");
    if (!st.ok()) return st;
    size_t padded = (pax.size() + kBlock - 1) / kBlock * kBlock;
    pax.resize(padded, '\0');
    st = sink_(pax);
    if (!st.ok()) return st;
  }
  char h[kBlock] = {};
  PutString(h + 0, 100, name);
  PutOctal(h + 100, 8, static_cast<uint64_t>(mode));
  PutOctal(h + 108, 8, 0);
  PutOctal(h + 116, 8, 0);
  PutOctal(h + 124, 12, size > kMaxUstarSize ? 0 : static_cast<uint64_t>(size));
  PutOctal(h + 136, 12, 0);
  h[156] = type;
  PutString(h + 157, 100, link.substr(0, 100));
  std::memcpy(h + 257,
              "ustar\0"
              "00",
              8);
  PutString(h + 345, 155, prefix);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  PutOctal(h + 148, 7, sum);
  h[155] = ' ';
  return sink_(absl::string_view(h, kBlock));
}

absl::Status TarWriter::AddDirectory(absl::string_view path) {
  return WriteHeader(absl::StrCat(path, "/"), '5', 0755, 0, "");
}

absl::Status TarWriter::AddSymlink(absl::string_view path,
                                   absl::string_view target) {
  return WriteHeader(path, '2', 0777, 0, target);
}

absl::Status TarWriter::BeginFile(absl::string_view path, int64_t size,
                                  bool executable) {
  absl::Status st = WriteHeader(path, '0', executable ? 0755 : 0644, size, "");
  if (!st.ok()) return st;
  file_remaining_ = size;
  file_size_ = size;
  return absl::OkStatus();
}

absl::Status TarWriter::FileData(absl::string_view data) {
  if (file_remaining_ < 0) return absl::FailedPreconditionError("no file");
  if (static_cast<int64_t>(data.size()) > file_remaining_) {
    return absl::FailedPreconditionError("more file data than announced");
  }
  file_remaining_ -= static_cast<int64_t>(data.size());
  return sink_(data);
}

absl::Status TarWriter::EndFile() {
  if (file_remaining_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("file ended ", file_remaining_, " bytes early"));
  }
  file_remaining_ = -1;
  size_t pad = (kBlock - file_size_ % kBlock) % kBlock;
  if (pad == 0) return absl::OkStatus();
  return sink_(absl::string_view(kZeros, pad));
}

absl::Status TarWriter::Finish() {
  if (file_remaining_ >= 0) {
    return absl::FailedPreconditionError("file not finished");
  }
  return sink_(absl::string_view(kZeros, sizeof(kZeros)));
}

}  // namespace kiln::archive
