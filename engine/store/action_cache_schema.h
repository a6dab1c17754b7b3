// The action cache's SQLite schema, as forward migrations (migrate.h).
#ifndef KILN_ENGINE_STORE_ACTION_CACHE_SCHEMA_H_
#define KILN_ENGINE_STORE_ACTION_CACHE_SCHEMA_H_

#include "absl/types/span.h"
#include "engine/store/migrate.h"

namespace kiln::store {

absl::Span<const Migration> ActionCacheMigrations();

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_ACTION_CACHE_SCHEMA_H_
