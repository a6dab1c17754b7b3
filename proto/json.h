#ifndef KILN_PROTO_JSON_H_
#define KILN_PROTO_JSON_H_

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"

namespace kiln::proto {

// Appends `message` as JSON to `out`: byte for byte what protobuf's
// MessageToJsonString prints with the same options, at a fraction of the
// cost for a message type printed again and again (a run's events in
// `kiln run --json`, the dashboard's API). MessageToJsonString converts
// every message and enum type it meets into a google.protobuf.Type anew on
// each call (a third of a cached no-op's event printing, bench/README.md
// B1); this keeps the converted types of the generated pool, once each.
// Thread-safe. A message of another pool is printed by MessageToJsonString.
absl::Status AppendJson(const google::protobuf::Message& message,
                        const google::protobuf::util::JsonPrintOptions& options,
                        std::string* out);

}  // namespace kiln::proto

#endif  // KILN_PROTO_JSON_H_
