// Per-store secret keys and authenticated encryption of small values.
//
// A key file holds exactly 32 random bytes, owner-only (0600). It is
// created atomically (written to a temporary file, fsynced, then link()ed
// into place, so two processes racing agree on one key) and re-read by every
// process on the store.
//
// A key file of the wrong size (empty, truncated, overwritten) is damaged
// state: it never crashes or blocks kiln. It is moved aside to
// <path>.damaged-<unix seconds>, a fresh key is created, and a warning
// saying what the new key invalidates goes to stderr. Repairs take an
// exclusive flock on <path>.lock, so a process never moves aside the fresh
// key another one just created.
#ifndef KILN_ENGINE_STORE_KEY_FILE_H_
#define KILN_ENGINE_STORE_KEY_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::store {

constexpr size_t kKeyBytes = 32;

// The key at `path`, created if absent and replaced if damaged (see above).
// `consequence` completes the warning "...; <consequence>" when a damaged
// key is replaced, e.g. "cache entries of tasks using secrets will miss
// once".
absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path,
                                            absl::string_view consequence);

// AES-256-GCM with a random 96-bit nonce: nonce || ciphertext || 16-byte
// tag. `aad` is authenticated, not stored (it binds the value to its place,
// e.g. a run id and param name). `key` must be kKeyBytes long.
absl::StatusOr<std::string> SealValue(absl::string_view key,
                                      absl::string_view plaintext,
                                      absl::string_view aad);
// DataLoss if `sealed` was not sealed with this key and aad, or was altered.
absl::StatusOr<std::string> OpenSealedValue(absl::string_view key,
                                            absl::string_view sealed,
                                            absl::string_view aad);

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_KEY_FILE_H_
