// The action cache's hit column (schema 3): an entry's outputs, results
// and archives in one value, so that a lookup reads one row.
//
// Layout: the byte kHitFormat, then three sections in this order —
// outputs, results, archives — each a varint count and its entries in
// increasing key order: outputs and results as two strings (name, value),
// archives as two strings (artifact, archive digest) and the size as a
// zigzag varint (any int64, as the table holds it: the hit and the tables
// never disagree). A string is a varint length and its bytes. Anything
// else (another format byte, a count or length past the end, keys out of
// order, bytes left over) is not decoded, and the lookup reads the tables
// instead (ActionCache, action_cache.cc).
#ifndef KILN_ENGINE_STORE_ACTION_HIT_H_
#define KILN_ENGINE_STORE_ACTION_HIT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "engine/store/action_cache.h"

namespace kiln::store {

// r's outputs, results and archives (nothing else of r).
std::string EncodeHit(const ActionResult& r);

// Fills r's outputs, results and archives from `in` if all of `in` is well
// formed; otherwise returns false and leaves r as it was.
bool DecodeHit(absl::string_view in, ActionResult* r);

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_ACTION_HIT_H_
