// Kubernetes resource quantities ("500m", "1Gi", "2", "1.5G", "1e3"), as
// the API server accepts them: a signed decimal number and a suffix (binary
// Ki..Ei, decimal n, u, m, k, M, G, T, P, E, or an exponent e<N>/E<N>).
#ifndef KILN_ENGINE_FACTORY_QUANTITY_H_
#define KILN_ENGINE_FACTORY_QUANTITY_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace kiln::factory {

// The exact value in nano-units (10^-9). nullopt when `text` is not a
// quantity or its value does not fit (|value| beyond ~1.7e29). A value
// finer than 1n is rounded up, as the API server does.
std::optional<__int128> ParseQuantity(absl::string_view text);

// Two texts naming the same quantity ("1000m" and "1", "1Gi" and
// "1024Mi"); false if either is not a quantity.
bool SameQuantity(absl::string_view a, absl::string_view b);

}  // namespace kiln::factory

#endif  // KILN_ENGINE_FACTORY_QUANTITY_H_
