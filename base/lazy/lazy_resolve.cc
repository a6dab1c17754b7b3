// The resolver behind the lazily bound functions of stubs.inc.

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {

// Laid out by KILN_LAZY_LIBRARY and KILN_LAZY (stubs.inc).
struct Library {
  const char* soname;
  void* handle;  // dlopen's, once opened
};

struct Record {
  void* slot;  // where the stub jumps: the first-call path, then the function
  const char* name;
  Library* library;
};

[[noreturn]] void Die(const Library& lib, const char* name, const char* why) {
  // Nothing can be returned to a caller that expects the function itself:
  // say what is missing and stop. The library is a package dependency of
  // kiln (scripts/install-deps installs it), so this means a broken install.
  std::fprintf(stderr,
               "kiln: cannot use %s from %s (%s); reinstall that library\n",
               name, lib.soname, why != nullptr ? why : "unknown error");
  std::fflush(stderr);
  _exit(127);
}

}  // namespace

// Called by kiln_lazy_entry on the first call of a stub (any thread): opens
// the library (dlopen returns the same handle to every caller and thread),
// looks the function up and stores it in the stub's slot, so later calls
// jump straight to it. Two threads racing here store the same address.
extern "C" __attribute__((visibility("hidden"))) void* kiln_lazy_resolve(
    Record* rec) {
  Library* lib = rec->library;
  void* handle = __atomic_load_n(&lib->handle, __ATOMIC_ACQUIRE);
  if (handle == nullptr) {
    handle = dlopen(lib->soname, RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr) Die(*lib, rec->name, dlerror());
    __atomic_store_n(&lib->handle, handle, __ATOMIC_RELEASE);
  }
  void* fn = dlsym(handle, rec->name);
  if (fn == nullptr) Die(*lib, rec->name, dlerror());
  __atomic_store_n(&rec->slot, fn, __ATOMIC_RELEASE);
  return fn;
}
