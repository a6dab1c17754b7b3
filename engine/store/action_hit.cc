#include "engine/store/action_hit.h"

#include <cstdint>
#include <map>
#include <utility>

namespace kiln::store {

namespace {

// The first byte of every hit this kiln writes (action_hit.h).
constexpr char kHitFormat = 1;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutString(absl::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s.data(), s.size());
}

bool GetVarint(absl::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool GetString(absl::string_view* in, std::string* s) {
  uint64_t n;
  if (!GetVarint(in, &n) || n > in->size()) return false;
  s->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

// A size as the tables hold it, any int64 (Digest::kUnknownSize is -1):
// zigzag, so small magnitudes of either sign stay short.
uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t UnZigZag(uint64_t u) {
  return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
}

// A section's count: each entry takes at least two bytes, so a count the
// rest cannot hold is refused before any loop.
bool GetCount(absl::string_view* in, uint64_t* n) {
  return GetVarint(in, n) && *n <= in->size() / 2;
}

}  // namespace

std::string EncodeHit(const ActionResult& r) {
  std::string out(1, kHitFormat);
  for (const auto* map : {&r.outputs, &r.results}) {
    PutVarint(map->size(), &out);
    for (const auto& [name, value] : *map) {
      PutString(name, &out);
      PutString(value, &out);
    }
  }
  PutVarint(r.archives.size(), &out);
  for (const auto& [artifact, archive] : r.archives) {
    PutString(artifact, &out);
    PutString(archive.digest, &out);
    PutVarint(ZigZag(archive.size), &out);
  }
  return out;
}

bool DecodeHit(absl::string_view in, ActionResult* r) {
  if (in.empty() || in.front() != kHitFormat) return false;
  in.remove_prefix(1);
  std::map<std::string, std::string> maps[2];
  for (auto& map : maps) {
    uint64_t n;
    if (!GetCount(&in, &n)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      std::string name, value;
      if (!GetString(&in, &name) || !GetString(&in, &value)) return false;
      if (!map.empty() && name <= map.rbegin()->first) return false;
      map.emplace_hint(map.end(), std::move(name), std::move(value));
    }
  }
  std::map<std::string, OutputArchive> archives;
  uint64_t n;
  if (!GetCount(&in, &n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string artifact;
    OutputArchive archive;
    uint64_t size;
    if (!GetString(&in, &artifact) || !GetString(&in, &archive.digest) ||
        !GetVarint(&in, &size)) {
      return false;
    }
    if (!archives.empty() && artifact <= archives.rbegin()->first) {
      return false;
    }
    archive.size = UnZigZag(size);
    archives.emplace_hint(archives.end(), std::move(artifact),
                          std::move(archive));
  }
  if (!in.empty()) return false;
  r->outputs = std::move(maps[0]);
  r->results = std::move(maps[1]);
  r->archives = std::move(archives);
  return true;
}

}  // namespace kiln::store
