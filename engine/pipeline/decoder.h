// Internal to the loader: typed reads from a yaml::Node tree into protos,
// collecting positioned diagnostics and recording a SourceMap.
//
// Every read takes the field path the value lands at; the node's position is
// recorded under that path. Failures append a diagnostic and leave the output
// untouched; decoding continues so that all errors are reported.
#ifndef KILN_ENGINE_PIPELINE_DECODER_H_
#define KILN_ENGINE_PIPELINE_DECODER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/yaml/node.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/repeated_field.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline::internal {

using yaml::Node;

// An enum's YAML spelling and its proto value.
using EnumNames = std::vector<std::pair<std::string, int>>;

class Decoder {
 public:
  Decoder(SourceMap* map, std::vector<Diagnostic>* errors)
      : map_(map), errors_(errors) {}

  const std::string& file() const { return map_->file(); }
  void Error(const Node& at, std::string message);
  void Record(const std::string& path, const Node& node);

  // Records the node; reports "expected a KIND, got a ..." unless it is one.
  bool ExpectMapping(const Node& node, const std::string& path);
  bool ExpectSequence(const Node& node, const std::string& path);

  // Any scalar, as text (null is an error).
  bool String(const Node& node, const std::string& path, std::string* out);
  // A plain true/false.
  bool Bool(const Node& node, const std::string& path, bool* out);
  // A plain non-negative decimal integer <= max.
  bool Uint(const Node& node, const std::string& path, uint64_t max,
            uint64_t* out);
  // "1h30m", "10m", "30s", "500ms", "0".
  bool Duration(const Node& node, const std::string& path,
                google::protobuf::Duration* out);
  // 1048576, "512Mi", "1G", "64k".
  bool ByteSize(const Node& node, const std::string& path, uint64_t* out);
  // One of `names` (case-insensitive); lists them on error.
  bool Enum(const Node& node, const std::string& path, const EnumNames& names,
            absl::string_view what, int* out);
  // A sequence of scalars.
  void StringList(const Node& node, const std::string& path,
                  google::protobuf::RepeatedPtrField<std::string>* out);

 private:
  SourceMap* map_;
  std::vector<Diagnostic>* errors_;
};

// Reads the fields of one mapping: reports unknown keys (with a suggestion
// among `allowed`) on construction; Get() returns a present field's value.
class Fields {
 public:
  Fields(Decoder* decoder, const Node& mapping, std::string path,
         std::vector<std::string> allowed);

  // nullptr when absent (or when the node is not a mapping).
  const Node* Get(absl::string_view key) const;
  std::string PathOf(absl::string_view key) const { return Field(path_, key); }
  bool ok() const { return ok_; }

 private:
  const Node* mapping_;
  std::string path_;
  bool ok_;
};

// Field readers shared by the task decoders (engine/kinds/ and
// decode_task.cc): each reads `key` of `f` if present.
void DecodeString(Decoder* d, const Fields& f, absl::string_view key,
                  std::string* out);
void DecodeBool(Decoder* d, const Fields& f, absl::string_view key,
                const std::function<void(bool)>& set);
void DecodeList(Decoder* d, const Fields& f, absl::string_view key,
                google::protobuf::RepeatedPtrField<std::string>* out);
// `env: {NAME: value}` or `env: [{name: NAME, value: v}]`.
void DecodeEnv(Decoder* d, const Fields& f,
               google::protobuf::RepeatedPtrField<v1::EnvVar>* out);
// `labels: {key: value}`.
void DecodeLabels(Decoder* d, const Fields& f,
                  google::protobuf::RepeatedPtrField<v1::Label>* out);

// Parses a duration ("1h30m", "90s", "250ms", "0"); false if malformed.
bool ParseDuration(absl::string_view text, int64_t* seconds, int32_t* nanos);

}  // namespace kiln::pipeline::internal

#endif  // KILN_ENGINE_PIPELINE_DECODER_H_
