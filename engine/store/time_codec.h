// How the stores encode time: integer microseconds since the Unix epoch.
#ifndef KILN_ENGINE_STORE_TIME_CODEC_H_
#define KILN_ENGINE_STORE_TIME_CODEC_H_

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace kiln::store {

inline int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

inline int64_t ToMicros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

inline google::protobuf::Timestamp ToTimestamp(int64_t micros) {
  google::protobuf::Timestamp ts;
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {  // floor division for times before the epoch
    rest += 1000000;
    seconds -= 1;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(rest * 1000));
  return ts;
}

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_TIME_CODEC_H_
