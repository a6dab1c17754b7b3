// kiln's version, for programs that embed the library (docs/embedding.md).
//
// Before 1.0 the C++ API and ABI may change between minor versions (0.x):
// the shared library's SONAME carries the minor (libkiln.so.0.7), so a
// program built against one minor never loads another. Within a minor,
// patch releases keep both. The gRPC API (proto/kiln/v1) is stable within
// v1: fields are only added.
#ifndef KILN_API_VERSION_H_
#define KILN_API_VERSION_H_

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 7
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.7.0"
// Comparable: KILN_VERSION >= KILN_MAKE_VERSION(0, 6, 0).
#define KILN_MAKE_VERSION(major, minor, patch) \
  ((major)*10000 + (minor)*100 + (patch))
#define KILN_VERSION \
  KILN_MAKE_VERSION(KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH)

namespace kiln {

// The version of the library actually loaded ("0.7.0"); compare it with
// KILN_VERSION_STRING, the one a program was compiled against.
const char* Version();

}  // namespace kiln

#endif  // KILN_API_VERSION_H_
