// Measures how a function's running time grows with its input, for tests
// that claim "linear" or "bounded": a claim with no bound at all cannot
// fail.
#ifndef KILN_BASE_TESTING_GROWTH_H_
#define KILN_BASE_TESTING_GROWTH_H_

#include <algorithm>
#include <chrono>
#include <functional>

namespace kiln::growth {

// Best (least disturbed) of `repeats` timings of run(), in seconds.
inline double BestSeconds(const std::function<void()>& run, int repeats = 3) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    std::chrono::duration<double> took =
        std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count());
  }
  return best;
}

// The time of run(factor * n) over the time of run(n), from the best of
// several runs each (which filters out a loaded machine's stalls). Times
// under a millisecond are raised to one, so a fast, constant-time function
// reads as ~1 rather than as noise.
inline double GrowthRatio(const std::function<void(int)>& run, int n,
                          int factor) {
  run(n);  // warm up (allocator, caches)
  double small = std::max(BestSeconds([&] { run(n); }), 1e-3);
  double large = std::max(BestSeconds([&] { run(factor * n); }), 1e-3);
  return large / small;
}

// GrowthRatio from n to 2n: linear work gives about 2, quadratic about 4.
inline double DoublingRatio(const std::function<void(int)>& run, int n) {
  return GrowthRatio(run, n, 2);
}

// The bound tests use for "grows linearly (or better)": between linear (2)
// and quadratic (4), with room for timing noise.
constexpr double kLinearDoublingBound = 3.0;

// As DoublingRatio, from n to 4n: linear work gives about 4, n log n a
// little more, quadratic about 16. For work that is n log n or touches
// more memory as it grows (cache misses make a doubling of it read up to
// ~3 on a loaded machine, under sanitizers): the wider step keeps linear
// and quadratic far apart.
inline double QuadruplingRatio(const std::function<void(int)>& run, int n) {
  return GrowthRatio(run, n, 4);
}

// The bound for QuadruplingRatio: the geometric middle of linear (4) and
// quadratic (16).
constexpr double kLinearQuadruplingBound = 8.0;

}  // namespace kiln::growth

#endif  // KILN_BASE_TESTING_GROWTH_H_
