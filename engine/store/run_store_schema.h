// The run store's SQLite schema, as forward migrations (migrate.h).
#ifndef KILN_ENGINE_STORE_RUN_STORE_SCHEMA_H_
#define KILN_ENGINE_STORE_RUN_STORE_SCHEMA_H_

#include "absl/types/span.h"
#include "engine/store/migrate.h"

namespace kiln::store {

absl::Span<const Migration> RunStoreMigrations();

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_RUN_STORE_SCHEMA_H_
