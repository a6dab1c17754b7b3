// B7 driver (bench/README.md): builds the image of a directory tree.
//
//   b7_image layer TREE OUTDIR REPEAT
//       BuildImage (scratch + one gzip layer of TREE at /data) REPEAT times,
//       a fresh layout each time; prints "seconds digest layer_bytes" of each.
//   b7_image engine TREE STORE
//       Runs a pipeline whose containerize task layers the `source` artifact
//       (TREE) at /data through the engine, twice; prints, per run, the run's
//       wall time, the containerize task's own time and its state.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/oci/builder.h"
#include "executors/fake/fake_executor.h"
#include "google/protobuf/util/time_util.h"

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

int Layer(const std::string& tree, const std::string& out, int repeat) {
  int tree_fd = open(tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int out_fd = open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tree_fd < 0 || out_fd < 0) {
    std::fprintf(stderr, "cannot open %s or %s\n", tree.c_str(), out.c_str());
    return 1;
  }
  for (int i = 0; i < repeat; ++i) {
    kiln::oci::BuildRequest req;
    req.layers.push_back(
        {kiln::oci::LayerSource{tree_fd, "tree", "/data", -1, 0, 0}, "data"});
    req.entrypoint = {"/data/run"};
    req.workers = 2;
    auto start = std::chrono::steady_clock::now();
    auto img = kiln::oci::BuildImage(req, out_fd, absl::StrCat("layout", i));
    double s = Since(start);
    if (!img.ok()) {
      std::fprintf(stderr, "%s\n", img.status().ToString().c_str());
      return 1;
    }
    std::printf("%.4f %s %lld\n", s, img->manifest_digest.c_str(),
                static_cast<long long>(img->layer_bytes));
  }
  close(tree_fd);
  close(out_fd);
  return 0;
}

int EngineRuns(const std::string& tree, const std::string& store) {
  kiln::EngineOptions options;
  options.store_dir = store;
  options.executor = std::make_shared<kiln::FakeExecutor>();
  auto engine = kiln::Engine::Create(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
    return 1;
  }
  // name: b7; tasks: [{name: image, containerize: {base: scratch,
  //   layers: [{artifact: source, to: /data}], entrypoint: [/data/run]}}]
  kiln::v1::Pipeline pipeline;
  pipeline.set_name("b7");
  kiln::v1::Task* task = pipeline.add_tasks();
  task->set_name("image");
  kiln::v1::ContainerizeSpec* spec = task->mutable_containerize();
  spec->set_base("scratch");
  kiln::v1::ImageLayer* layer = spec->add_layers();
  layer->set_artifact("source");
  layer->set_to("/data");
  spec->add_entrypoint("/data/run");
  for (int i = 0; i < 2; ++i) {
    kiln::RunRequest req;
    req.pipeline = pipeline;
    req.source_dir = tree;
    auto start = std::chrono::steady_clock::now();
    auto run = (*engine)->Submit(req);
    if (!run.ok()) return 1;
    kiln::v1::Run r = (*run)->Wait();
    double wall = Since(start);
    const auto& t = r.tasks(0);
    double task = google::protobuf::util::TimeUtil::DurationToNanoseconds(
                      t.finished() - t.started()) /
                  1e9;
    std::printf("%.4f %.4f %s %s\n", wall, task,
                kiln::v1::TaskState_Name(t.state()).c_str(),
                t.results().count("digest") ? t.results().at("digest").c_str()
                                            : t.reason().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "layer") {
    int repeat = 1;
    if (!absl::SimpleAtoi(argv[4], &repeat)) return 2;
    return Layer(argv[2], argv[3], repeat);
  }
  if (argc == 4 && std::string(argv[1]) == "engine") {
    return EngineRuns(argv[2], argv[3]);
  }
  std::fprintf(stderr,
               "usage: b7_image layer TREE OUTDIR N | engine TREE STORE\n");
  return 2;
}
