// Status propagation for the store package's sources (not a public header).
#ifndef KILN_ENGINE_STORE_STATUS_MACROS_H_
#define KILN_ENGINE_STORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KILN_STORE_CONCAT_INNER(a, b) a##b
#define KILN_STORE_CONCAT(a, b) KILN_STORE_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function if it is not OK.
#define KILN_STORE_RETURN_IF_ERROR(expr)                     \
  do {                                                       \
    ::absl::Status kiln_store_status_ = (expr);              \
    if (!kiln_store_status_.ok()) return kiln_store_status_; \
  } while (false)

// Evaluates `expr` (a StatusOr); returns its Status if not OK, else moves
// its value into `lhs` (a declaration or an lvalue).
#define KILN_STORE_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_STORE_ASSIGN_OR_RETURN_IMPL(            \
      KILN_STORE_CONCAT(kiln_store_statusor_, __LINE__), lhs, expr)
#define KILN_STORE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return tmp.status();                    \
  lhs = std::move(*tmp)

#endif  // KILN_ENGINE_STORE_STATUS_MACROS_H_
