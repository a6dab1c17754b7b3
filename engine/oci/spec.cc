#include "engine/oci/spec.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/cas/digest.h"

namespace kiln::oci {
namespace {

using json = nlohmann::json;

absl::Status Invalid(absl::string_view what, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
}

// Reads a JSON document no larger than `limit`; `what` names it in errors.
absl::StatusOr<json> ParseObject(absl::string_view text, size_t limit,
                                 absl::string_view what) {
  if (text.size() > limit) {
    return Invalid(
        what, absl::StrCat(text.size(), " bytes is over the limit of ", limit));
  }
  json doc = json::parse(text.begin(), text.end(), nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Invalid(what, "not valid JSON");
  if (!doc.is_object()) return Invalid(what, "not a JSON object");
  return doc;
}

// Field readers: absent is the default; a present field of the wrong type is
// an error (they throw json::type_error, caught by the callers).
std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return "";
  return it->get<std::string>();
}

std::vector<std::string> Strings(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  return it->get<std::vector<std::string>>();
}

std::map<std::string, std::string> StringMap(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  return it->get<std::map<std::string, std::string>>();
}

absl::Status CheckMediaType(absl::string_view what, absl::string_view in_doc,
                            absl::string_view expected) {
  if (!in_doc.empty() && !expected.empty() && in_doc != expected) {
    return Invalid(what,
                   absl::StrCat("document says mediaType '", in_doc,
                                "' but it was served as '", expected, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Descriptor> ReadDescriptor(const json& o,
                                          const std::string& what) {
  if (!o.is_object()) return Invalid(what, "not a descriptor object");
  Descriptor d;
  d.media_type = Str(o, "mediaType");
  d.digest = Str(o, "digest");
  if (absl::StartsWith(d.digest, "sha512:")) {
    return Invalid(what, "sha512 digests are not supported (only sha256)");
  }
  if (!cas::Digest::Parse(d.digest).ok()) {
    return Invalid(what, absl::StrCat("malformed digest '", d.digest, "'"));
  }
  auto size = o.find("size");
  if (size == o.end() || !size->is_number_integer() ||
      size->get<int64_t>() < 0) {
    return Invalid(what, "missing or negative size");
  }
  d.size = size->get<int64_t>();
  d.annotations = StringMap(o, "annotations");
  if (auto p = o.find("platform"); p != o.end() && p->is_object()) {
    d.platform =
        Platform{Str(*p, "os"), Str(*p, "architecture"), Str(*p, "variant")};
  }
  return d;
}

json WriteDescriptor(const Descriptor& d) {
  json o = json::object();
  if (!d.media_type.empty()) o["mediaType"] = d.media_type;
  o["digest"] = d.digest;
  o["size"] = d.size;
  if (!d.annotations.empty()) o["annotations"] = d.annotations;
  if (d.platform) {
    json p = {{"os", d.platform->os},
              {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) p["variant"] = d.platform->variant;
    o["platform"] = p;
  }
  return o;
}

absl::Status CheckSchemaVersion(const json& doc, absl::string_view what) {
  auto v = doc.find("schemaVersion");
  if (v == doc.end() || !v->is_number_integer() || v->get<int>() != 2) {
    return Invalid(
        what, "schemaVersion must be 2 (Docker schema 1 is not supported)");
  }
  return absl::OkStatus();
}

template <typename Fn>
auto Guarded(absl::string_view what, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const json::exception& e) {
    return Invalid(what,
                   absl::StrCat("a field has the wrong type (", e.what(), ")"));
  }
}

}  // namespace

bool IsManifestMediaType(absl::string_view t) {
  return t == kOciManifest || t == kDockerManifest;
}

bool IsIndexMediaType(absl::string_view t) {
  return t == kOciIndex || t == kDockerManifestList;
}

absl::StatusOr<std::string> LayerCompression(absl::string_view t) {
  if (t == kOciLayerGzip || t == kDockerLayerGzip) return std::string("gzip");
  if (t == kOciLayerZstd) return std::string("zstd");
  if (t == kOciLayerTar) return std::string();
  return Invalid("layer",
                 absl::StrCat("unsupported layer media type '", t, "'"));
}

absl::StatusOr<Platform> Platform::Parse(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() ||
      parts[1].empty() || (parts.size() == 3 && parts[2].empty())) {
    return Invalid(
        "platform",
        absl::StrCat("'", text,
                     "' is not OS/ARCH[/VARIANT] (e.g. linux/amd64)"));
  }
  return Platform{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
}

std::string Platform::ToString() const {
  std::string s = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) absl::StrAppend(&s, "/", variant);
  return s;
}

bool Platform::Accepts(const Platform& c) const {
  return os == c.os && architecture == c.architecture &&
         (variant.empty() || variant == c.variant);
}

absl::StatusOr<Manifest> ParseManifest(absl::string_view text,
                                       absl::string_view media_type) {
  constexpr absl::string_view kWhat = "image manifest";
  auto doc = ParseObject(text, kMaxManifestBytes, kWhat);
  if (!doc.ok()) return doc.status();
  return Guarded(kWhat, [&]() -> absl::StatusOr<Manifest> {
    if (absl::Status s = CheckSchemaVersion(*doc, kWhat); !s.ok()) return s;
    Manifest m;
    m.media_type = Str(*doc, "mediaType");
    if (absl::Status s = CheckMediaType(kWhat, m.media_type, media_type);
        !s.ok()) {
      return s;
    }
    if (m.media_type.empty()) m.media_type = std::string(media_type);
    if (m.media_type.empty()) m.media_type = kOciManifest;
    if (!IsManifestMediaType(m.media_type)) {
      return Invalid(kWhat, absl::StrCat("media type '", m.media_type,
                                         "' is not an image manifest"));
    }
    if (doc->contains("manifests")) {
      return Invalid(kWhat, "has 'manifests': this is an index");
    }
    auto config = doc->find("config");
    if (config == doc->end()) return Invalid(kWhat, "has no config");
    auto c = ReadDescriptor(*config, "image manifest config");
    if (!c.ok()) return c.status();
    m.config = *std::move(c);
    auto layers = doc->find("layers");
    if (layers != doc->end() && !layers->is_null()) {
      if (!layers->is_array()) return Invalid(kWhat, "'layers' is not a list");
      for (size_t i = 0; i < layers->size(); ++i) {
        auto l = ReadDescriptor((*layers)[i],
                                absl::StrCat("image manifest layers[", i, "]"));
        if (!l.ok()) return l.status();
        m.layers.push_back(*std::move(l));
      }
    }
    m.annotations = StringMap(*doc, "annotations");
    return m;
  });
}

absl::StatusOr<Index> ParseIndex(absl::string_view text,
                                 absl::string_view media_type) {
  constexpr absl::string_view kWhat = "image index";
  auto doc = ParseObject(text, kMaxManifestBytes, kWhat);
  if (!doc.ok()) return doc.status();
  return Guarded(kWhat, [&]() -> absl::StatusOr<Index> {
    if (absl::Status s = CheckSchemaVersion(*doc, kWhat); !s.ok()) return s;
    Index x;
    x.media_type = Str(*doc, "mediaType");
    if (absl::Status s = CheckMediaType(kWhat, x.media_type, media_type);
        !s.ok()) {
      return s;
    }
    if (x.media_type.empty()) x.media_type = std::string(media_type);
    if (x.media_type.empty()) x.media_type = kOciIndex;
    if (!IsIndexMediaType(x.media_type)) {
      return Invalid(kWhat, absl::StrCat("media type '", x.media_type,
                                         "' is not an image index"));
    }
    auto list = doc->find("manifests");
    if (list == doc->end() || !list->is_array()) {
      return Invalid(kWhat, "has no 'manifests' list");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      auto d = ReadDescriptor((*list)[i],
                              absl::StrCat("image index manifests[", i, "]"));
      if (!d.ok()) return d.status();
      x.manifests.push_back(*std::move(d));
    }
    x.annotations = StringMap(*doc, "annotations");
    return x;
  });
}

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view text) {
  constexpr absl::string_view kWhat = "image config";
  auto doc = ParseObject(text, kMaxConfigBytes, kWhat);
  if (!doc.ok()) return doc.status();
  return Guarded(kWhat, [&]() -> absl::StatusOr<ImageConfig> {
    ImageConfig c;
    json& d = *doc;
    c.created = Str(d, "created");
    c.author = Str(d, "author");
    c.platform =
        Platform{Str(d, "os"), Str(d, "architecture"), Str(d, "variant")};
    if (auto cfg = d.find("config"); cfg != d.end() && cfg->is_object()) {
      json& o = *cfg;
      c.user = Str(o, "User");
      c.env = Strings(o, "Env");
      c.entrypoint = Strings(o, "Entrypoint");
      c.cmd = Strings(o, "Cmd");
      c.working_dir = Str(o, "WorkingDir");
      c.labels = StringMap(o, "Labels");
      if (auto p = o.find("ExposedPorts"); p != o.end() && p->is_object()) {
        for (auto it = p->begin(); it != p->end(); ++it) {
          c.exposed_ports.push_back(it.key());
        }
      }
      for (const char* k : {"User", "Env", "Entrypoint", "Cmd", "WorkingDir",
                            "Labels", "ExposedPorts"}) {
        o.erase(k);
      }
      c.other_config = std::move(o);
    }
    if (auto r = d.find("rootfs"); r != d.end() && r->is_object()) {
      if (Str(*r, "type") != "layers") {
        return Invalid(kWhat, "rootfs.type must be 'layers'");
      }
      c.diff_ids = Strings(*r, "diff_ids");
      for (const std::string& id : c.diff_ids) {
        if (!cas::Digest::Parse(id).ok()) {
          return Invalid(kWhat, absl::StrCat("malformed diff_id '", id, "'"));
        }
      }
    }
    if (auto h = d.find("history"); h != d.end() && h->is_array()) {
      for (const json& e : *h) {
        HistoryEntry entry{Str(e, "created"), Str(e, "created_by"),
                           Str(e, "comment"), false};
        if (auto el = e.find("empty_layer");
            el != e.end() && el->is_boolean()) {
          entry.empty_layer = el->get<bool>();
        }
        c.history.push_back(std::move(entry));
      }
    }
    for (const char* k : {"created", "author", "os", "architecture", "variant",
                          "config", "rootfs", "history"}) {
      d.erase(k);
    }
    c.other = std::move(d);
    return c;
  });
}

std::string ToJson(const Manifest& m) {
  json o = json::object();
  o["schemaVersion"] = 2;
  if (!m.media_type.empty()) o["mediaType"] = m.media_type;
  o["config"] = WriteDescriptor(m.config);
  o["layers"] = json::array();
  for (const Descriptor& l : m.layers)
    o["layers"].push_back(WriteDescriptor(l));
  if (!m.annotations.empty()) o["annotations"] = m.annotations;
  return o.dump();
}

std::string ToJson(const Index& x) {
  json o = json::object();
  o["schemaVersion"] = 2;
  if (!x.media_type.empty()) o["mediaType"] = x.media_type;
  o["manifests"] = json::array();
  for (const Descriptor& d : x.manifests) {
    o["manifests"].push_back(WriteDescriptor(d));
  }
  if (!x.annotations.empty()) o["annotations"] = x.annotations;
  return o.dump();
}

std::string ToJson(const ImageConfig& c) {
  json o = c.other.is_object() ? c.other : json::object();
  if (!c.created.empty()) o["created"] = c.created;
  if (!c.author.empty()) o["author"] = c.author;
  o["os"] = c.platform.os;
  o["architecture"] = c.platform.architecture;
  if (!c.platform.variant.empty()) o["variant"] = c.platform.variant;
  json cfg = c.other_config.is_object() ? c.other_config : json::object();
  if (!c.user.empty()) cfg["User"] = c.user;
  if (!c.env.empty()) cfg["Env"] = c.env;
  if (!c.entrypoint.empty()) cfg["Entrypoint"] = c.entrypoint;
  if (!c.cmd.empty()) cfg["Cmd"] = c.cmd;
  if (!c.working_dir.empty()) cfg["WorkingDir"] = c.working_dir;
  if (!c.labels.empty()) cfg["Labels"] = c.labels;
  if (!c.exposed_ports.empty()) {
    json ports = json::object();
    for (const std::string& p : c.exposed_ports) ports[p] = json::object();
    cfg["ExposedPorts"] = ports;
  }
  o["config"] = cfg;
  o["rootfs"] = {{"type", "layers"}, {"diff_ids", c.diff_ids}};
  if (!c.history.empty()) {
    json h = json::array();
    for (const HistoryEntry& e : c.history) {
      json j = json::object();
      if (!e.created.empty()) j["created"] = e.created;
      if (!e.created_by.empty()) j["created_by"] = e.created_by;
      if (!e.comment.empty()) j["comment"] = e.comment;
      if (e.empty_layer) j["empty_layer"] = true;
      h.push_back(j);
    }
    o["history"] = h;
  }
  return o.dump();
}

absl::StatusOr<Descriptor> SelectPlatform(const Index& index,
                                          const Platform& want) {
  std::vector<std::string> offered;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform) continue;
    if (want.Accepts(*d.platform) && IsManifestMediaType(d.media_type)) {
      return d;
    }
    offered.push_back(d.platform->ToString());
  }
  std::sort(offered.begin(), offered.end());
  return absl::NotFoundError(absl::StrCat(
      "the image index has no manifest for platform ", want.ToString(),
      " (it offers: ", offered.empty() ? "none" : absl::StrJoin(offered, ", "),
      ")"));
}

}  // namespace kiln::oci
