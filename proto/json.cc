#include "proto/json.h"

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/type.pb.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace kiln::proto {
namespace {

namespace pb = google::protobuf;

constexpr char kUrlPrefix[] = "type.googleapis.com";

absl::Status FromProtobuf(const pb::util::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.code()),
                      std::string(s.message()));
}

// The generated pool's resolver (what MessageToJsonString uses), with each
// answer kept: a type is converted once per process, then copied out.
class CachingResolver : public pb::util::TypeResolver {
 public:
  CachingResolver()
      : base_(pb::util::NewTypeResolverForDescriptorPool(
            kUrlPrefix, pb::DescriptorPool::generated_pool())) {}

  pb::util::Status ResolveMessageType(const std::string& type_url,
                                      pb::Type* type) override {
    return Resolve(type_url, type, &types_,
                   [this](const std::string& url, pb::Type* t) {
                     return base_->ResolveMessageType(url, t);
                   });
  }
  pb::util::Status ResolveEnumType(const std::string& type_url,
                                   pb::Enum* enum_type) override {
    return Resolve(type_url, enum_type, &enums_,
                   [this](const std::string& url, pb::Enum* e) {
                     return base_->ResolveEnumType(url, e);
                   });
  }

 private:
  template <typename T, typename F>
  pb::util::Status Resolve(const std::string& url, T* out,
                           absl::flat_hash_map<std::string, T>* cache,
                           F resolve) {
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = cache->find(url);
      if (it != cache->end()) {
        *out = it->second;
        return pb::util::Status();
      }
    }
    pb::util::Status s = resolve(url, out);
    if (!s.ok()) return s;  // not kept: the next call says the same
    absl::MutexLock lock(&mu_);
    cache->emplace(url, *out);
    return s;
  }

  std::unique_ptr<pb::util::TypeResolver> base_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, pb::Type> types_;
  absl::flat_hash_map<std::string, pb::Enum> enums_;
};

CachingResolver* GeneratedResolver() {
  static CachingResolver* const resolver = new CachingResolver();
  return resolver;
}

}  // namespace

absl::Status AppendJson(const pb::Message& message,
                        const pb::util::JsonPrintOptions& options,
                        std::string* out) {
  const pb::Descriptor* d = message.GetDescriptor();
  if (d->file()->pool() != pb::DescriptorPool::generated_pool()) {
    return FromProtobuf(pb::util::MessageToJsonString(message, out, options));
  }
  std::string binary;
  if (!message.SerializeToString(&binary)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot serialize a ", d->full_name()));
  }
  return FromProtobuf(pb::util::BinaryToJsonString(
      GeneratedResolver(), absl::StrCat(kUrlPrefix, "/", d->full_name()),
      binary, out, options));
}

}  // namespace kiln::proto
