#include "engine/cas/tree_digest.h"

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::cas {
namespace {

constexpr absl::string_view kHeader = "kiln.tree.v1\n";

struct Node {
  const TreeEntry* entry = nullptr;  // null for an implied directory
  bool is_dir = false;
  std::map<std::string, std::unique_ptr<Node>> children;  // bytewise order
};

Digest EncodeAndHash(const Node& dir) {
  std::string enc(kHeader);
  for (const auto& [name, child] : dir.children) {
    if (child->is_dir) {
      absl::StrAppend(&enc, "d ", name.size(), ":", name, " ",
                      EncodeAndHash(*child).Hex(), "\n");
    } else if (child->entry->type == EntryType::kSymlink) {
      const std::string& t = child->entry->link_target;
      absl::StrAppend(&enc, "l ", name.size(), ":", name, " ", t.size(), ":", t,
                      "\n");
    } else {
      absl::StrAppend(&enc, child->entry->executable ? "x " : "f ", name.size(),
                      ":", name, " ", child->entry->digest.Hex(), " ",
                      child->entry->digest.size(), "\n");
    }
  }
  return Digest::Of(enc);
}

}  // namespace

absl::StatusOr<Digest> ComputeTreeDigest(std::vector<TreeEntry> entries) {
  Node root;
  root.is_dir = true;
  for (const TreeEntry& e : entries) {
    if (e.path.empty()) return absl::InvalidArgumentError("empty entry path");
    std::vector<absl::string_view> parts = absl::StrSplit(e.path, '/');
    Node* dir = &root;
    for (size_t i = 0; i < parts.size(); ++i) {
      absl::string_view part = parts[i];
      if (part.empty() || part == "." || part == ".." ||
          part.find('\0') != absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed entry path \"", e.path, "\""));
      }
      bool last = i + 1 == parts.size();
      auto it = dir->children.find(std::string(part));
      if (it == dir->children.end()) {
        auto node = std::make_unique<Node>();
        node->is_dir = !last || e.type == EntryType::kDirectory;
        if (last) node->entry = &e;
        it = dir->children.emplace(std::string(part), std::move(node)).first;
      } else if (!it->second->is_dir) {
        return absl::InvalidArgumentError(absl::StrCat(
            "entry \"", e.path, "\" is below or duplicates a non-directory"));
      } else if (last) {
        // An implied directory may be listed later; anything else repeats.
        if (e.type != EntryType::kDirectory || it->second->entry != nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("duplicate entry \"", e.path, "\""));
        }
        it->second->entry = &e;
      }
      dir = it->second.get();
    }
  }
  return EncodeAndHash(root);
}

}  // namespace kiln::cas
