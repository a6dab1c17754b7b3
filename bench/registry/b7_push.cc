// Benchmark B7 (push part): kiln's registry client pushing an image to a
// local docker-registry vs `skopeo copy oci:DIR docker://…` of the same
// image. The image: one layer of a ~200 MiB mixed tree (half random, half
// repetitive text), built by umoci. Each round pushes to a fresh registry
// (so nothing is skipped or mounted); the median is reported.
//
// Usage: b7_push [--mib=200] [--rounds=3] [--out=bench/results/b7_push.json]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/oci/registry/push.h"
#include "engine/oci/registry/registry.h"
#include "engine/oci/registry/testing/layout_dir.h"
#include "engine/oci/registry/testing/registry_fixture.h"
#include "engine/oci/registry/testing/subprocess.h"

namespace r = kiln::oci::registry;
namespace rt = kiln::oci::registry::testing;

namespace {

int Fail(const std::string& what) {
  fprintf(stderr, "b7_push: %s\n", what.c_str());
  return 1;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int mib = 200, rounds = 3;
  int64_t threshold_mib = -1;  // kiln's default
  std::string out = "bench/results/b7_push.json";
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--mib=")) {
      if (!absl::SimpleAtoi(a, &mib)) return Fail("bad --mib");
    } else if (absl::ConsumePrefix(&a, "--rounds=")) {
      if (!absl::SimpleAtoi(a, &rounds) || rounds < 1) {
        return Fail("bad --rounds");
      }
    } else if (absl::ConsumePrefix(&a, "--chunked-threshold-mib=")) {
      if (!absl::SimpleAtoi(a, &threshold_mib)) return Fail("bad threshold");
    } else if (absl::ConsumePrefix(&a, "--out=")) {
      out = std::string(a);
    } else {
      return Fail(absl::StrCat("unknown argument ", argv[i]));
    }
  }
  rt::TempDir tmp;
  std::map<std::string, std::string> env = {{"HOME", tmp.path()},
                                            {"TMPDIR", tmp.path()}};
  // The tree: 1 MiB files, alternating random and text.
  std::string root = tmp.path() + "/root";
  mkdir(root.c_str(), 0755);
  mkdir((root + "/data").c_str(), 0755);
  std::mt19937_64 rng(42);
  for (int i = 0; i < mib; ++i) {
    std::string bytes(1 << 20, '\0');
    if (i % 2 == 0) {
      for (size_t j = 0; j + 8 <= bytes.size(); j += 8) {
        uint64_t x = rng();
        memcpy(&bytes[j], &x, 8);
      }
    } else {
      for (size_t j = 0; j < bytes.size(); ++j) {
        bytes[j] = "kiln builds images\n"[(j + i) % 19];
      }
    }
    if (!rt::WriteWholeFile(absl::StrCat(root, "/data/f", i), bytes)) {
      return Fail("writing the tree");
    }
  }
  std::string lay = tmp.path() + "/layout";
  for (auto args : std::vector<std::vector<std::string>>{
           {"umoci", "init", "--layout", lay},
           {"umoci", "new", "--image", lay + ":1"},
           {"umoci", "insert", "--rootless", "--image", lay + ":1",
            root + "/data", "/data"}}) {
    auto res = rt::RunCommand(args, env, absl::Minutes(10));
    if (!res.ok() || res->exit_code != 0) {
      return Fail(absl::StrCat(
          args[1],
          " failed: ", res.ok() ? res->output : res.status().ToString()));
    }
  }
  rt::LayoutDir layout(lay);
  int layout_fd = open(lay.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (layout_fd < 0) return Fail("opening the layout");

  // For comparison: reading the layout into temporary files first (what
  // PushFromSource does for any ImageSource).
  double read_s = 0;
  {
    auto top = layout.GetManifest("1");
    if (!top.ok()) return Fail(top.status().ToString());
    auto manifest = kiln::oci::ParseManifest(top->bytes, top->media_type);
    if (!manifest.ok()) return Fail(manifest.status().ToString());
    auto blobs = r::BlobsFromSource(&layout, tmp.path());
    absl::Time start = absl::Now();
    for (const auto& d : manifest->layers) {
      auto fd = blobs->OpenBlob(d);
      if (!fd.ok()) return Fail(fd.status().ToString());
      close(*fd);
    }
    read_s = absl::ToDoubleSeconds(absl::Now() - start);
  }
  std::vector<double> kiln_s, skopeo_s;
  std::string digest;
  for (int round = 0; round < rounds; ++round) {
    {
      auto server = rt::RegistryServer::Start();
      if (!server.ok()) return Fail(server.status().ToString());
      r::RegistryOptions options;
      if (threshold_mib >= 0) {
        options.chunked_upload_threshold = threshold_mib << 20;
      }
      auto sources = r::RegistrySources::Create(options);
      if (!sources.ok()) return Fail(sources.status().ToString());
      absl::Time start = absl::Now();
      auto top = layout.GetManifest("1");
      if (!top.ok()) return Fail(top.status().ToString());
      auto in_place = r::BlobsFromLayout(layout_fd);
      auto pushed =
          r::PushImage(**sources, (*server)->address() + "/bench/app:1",
                       top->bytes, top->media_type, *in_place);
      kiln_s.push_back(absl::ToDoubleSeconds(absl::Now() - start));
      if (!pushed.ok()) return Fail(pushed.status().ToString());
      digest = *pushed;
    }
    {
      auto server = rt::RegistryServer::Start();
      if (!server.ok()) return Fail(server.status().ToString());
      absl::Time start = absl::Now();
      auto res =
          rt::RunCommand({"skopeo", "--insecure-policy", "copy",
                          "--dest-tls-verify=false", "oci:" + lay + ":1",
                          "docker://" + (*server)->address() + "/bench/app:1"},
                         env, absl::Minutes(10));
      skopeo_s.push_back(absl::ToDoubleSeconds(absl::Now() - start));
      if (!res.ok() || res->exit_code != 0) {
        return Fail(
            absl::StrCat("skopeo copy failed: ",
                         res.ok() ? res->output : res.status().ToString()));
      }
    }
  }
  double k = Median(kiln_s), s = Median(skopeo_s);
  std::string json = absl::StrCat(
      "{\n \"id\": \"B7-push\",\n \"what\": \"push a one-layer image of a ",
      mib,
      " MiB mixed tree (umoci-built OCI layout) to a fresh local "
      "docker-registry\",\n \"kiln_s\": ",
      k, ",\n \"peer\": \"skopeo copy oci:DIR docker://127.0.0.1:PORT/…\",\n",
      " \"peer_s\": ", s, ",\n \"ratio\": ", k / s,
      ",\n \"target\": \"report (BENCHMARKS.md B7: push vs skopeo copy)\",\n",
      " \"date\": \"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()),
      "\",\n \"notes\": \"median of ", rounds,
      " rounds, each tool on a fresh registry; layout_read_s = ", read_s,
      "s (copying the blobs into temporary files, as PushFromSource "
      "over an ImageSource would; kiln_s pushes in place with "
      "BlobsFromLayout); manifest ",
      digest, "\"\n}\n");
  if (!rt::WriteWholeFile(out, json)) return Fail("writing " + out);
  fputs(json.c_str(), stdout);
  return 0;
}
