// Times one stash with a chosen number of zstd workers, to tune the
// ArtifactStore defaults: stash_probe DIR STORE WORKERS.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "engine/cas/artifact_store.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: stash_probe DIR STORE WORKERS\n");
    return 2;
  }
  kiln::cas::ArtifactStoreOptions options;
  options.compression_workers = std::atoi(argv[3]);
  auto store = kiln::cas::ArtifactStore::Open(argv[2], options);
  if (!store.ok()) return 1;
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*store)->Stash(argv[1]);
  double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  std::printf("%s %.3fs\n", r->tree.ToString().c_str(), s);
  return 0;
}
