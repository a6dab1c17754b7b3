// Benchmark B9: `kiln serve` under load. C clients (each its own
// connection) submit R small runs in total and watch each to its end.
// Reports runs lost (not seen to a final state, or events with gaps or
// repeats), p50/p99 event latency (the event's recorded time -> the
// client's receipt), p50/p99 start latency (the call -> the run's first
// event: what a client waits for its run to begin, admission included),
// the server's peak RSS (VmHWM), and blob upload / download throughput on
// the same socket. Writes a JSON line to --out.
//
// Each client starts and watches a run with one SubmitAndWatchRun call;
// --two_calls uses SubmitRun then WatchRun instead (the pattern measured
// before SubmitAndWatchRun existed).
//
// Usage: b9 --kiln=PATH [--clients=200] [--runs=1000] [--blob_mb=256]
//           [--cached] [--two_calls] [--max_starts=N]
//           [--out=bench/results/b9.json]
// --max_starts is passed to `kiln serve --max-starts` (default: its own).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/cas/digest.h"
#include "engine/service/client.h"
#include "google/protobuf/util/time_util.h"

namespace kiln::bench {
namespace {

constexpr char kPipeline[] =
    "name: b9\n"
    "params:\n"
    "  - {name: n}\n"
    "tasks:\n"
    "  - name: first\n"
    "    run: {command: [/bin/true, '${params.n}']}\n"
    "  - name: second\n"
    "    needs: [first]\n"
    "    run: {command: [/bin/true, '${params.n}']}\n";

struct Flags {
  std::string kiln;
  int clients = 200;
  int runs = 1000;
  int blob_mb = 256;
  int chunk_kb = 1024;  // upload message size
  // Same param in every run: after the first, every task is an action-cache
  // hit (measures the service without sandbox load).
  bool cached = false;
  // SubmitRun, then WatchRun (else one SubmitAndWatchRun call).
  bool two_calls = false;
  std::string max_starts;  // kiln serve --max-starts (empty: its default)
  std::string out = "bench/results/b9.json";
};

std::string FlagValue(const std::string& arg, const std::string& name) {
  std::string prefix = "--" + name + "=";
  return absl::StartsWith(arg, prefix) ? arg.substr(prefix.size()) : "";
}

long PeakRssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      long kb = 0;
      std::sscanf(line.c_str(), "VmHWM: %ld", &kb);
      return kb;
    }
  }
  return -1;
}

// CPU seconds (user + system) used so far by process `pid` (all threads).
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  double ticks = 0;
  // Fields 3.. follow the name; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);
  }
  return ticks / sysconf(_SC_CLK_TCK);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1));
  return v[i];
}

struct ClientResult {
  int succeeded = 0;
  int lost = 0;
  std::vector<double> latencies_ms;
  std::vector<double> start_ms;  // the call -> the run's first event
  std::vector<std::string> errors;
};

void RunClient(int index, int runs, const Flags& flags, ClientResult* result) {
  service::ClientOptions options;
  options.server = "unix:kiln.sock";
  service::KilnClient client(options);
  for (int r = 0; r < runs; ++r) {
    v1::SubmitRunRequest request;
    request.set_yaml(kPipeline);
    (*request.mutable_trigger()->mutable_params())["n"] =
        flags.cached ? std::string("same") : absl::StrCat(index, "-", r);
    request.set_idempotency_key(absl::StrCat("b9-", index, "-", r));
    uint64_t last = 0;
    bool gap = false;
    const absl::Time called = absl::Now();
    auto on_event = [&](const v1::RunEvent& e) {
      absl::Time now = absl::Now();
      if (last == 0) {
        result->start_ms.push_back(absl::ToDoubleMilliseconds(now - called));
      }
      absl::Time at = absl::FromUnixNanos(
          google::protobuf::util::TimeUtil::TimestampToNanoseconds(e.time()));
      result->latencies_ms.push_back(absl::ToDoubleMilliseconds(now - at));
      if (e.sequence() != last + 1) gap = true;
      last = e.sequence();
    };
    std::string run_id;
    absl::StatusOr<v1::RunState> state;
    if (flags.two_calls) {
      v1::SubmitRunResponse response;
      grpc::Status status;
      for (int attempt = 0; attempt < 5; ++attempt) {
        auto context = client.NewContext(absl::Seconds(120));
        context->set_wait_for_ready(true);
        status = client.stub().SubmitRun(context.get(), request, &response);
        if (status.ok()) break;
      }
      if (!status.ok()) {
        ++result->lost;
        result->errors.push_back(status.error_message());
        continue;
      }
      run_id = response.run_id();
      state = client.Watch(run_id, 0, on_event, absl::Seconds(120));
    } else {
      state =
          client.SubmitAndWatch(request, on_event, &run_id, absl::Seconds(120));
    }
    if (!state.ok() || gap) {
      ++result->lost;
      result->errors.push_back(
          state.ok() ? "gap in events" : std::string(state.status().message()));
    } else if (*state == v1::RUN_SUCCEEDED) {
      ++result->succeeded;
    } else {
      result->errors.push_back(
          absl::StrCat("run ", run_id, " ", v1::RunState_Name(*state)));
    }
  }
}

// Upload and download one blob of `mb` MiB; MB/s each way, and of the
// client's hashing of the blob. The upload is timed as EnsureBlob's is: the
// client already has the blob's digest (it named it in FindMissingBlobs),
// so hashing it is not part of the transfer and is reported on its own.
// CPU seconds of the server and of this client during each transfer go to
// `cpu` (upload server, upload client, download server, download client):
// unlike the wall time they hardly change when other work shares the cores.
void BlobThroughput(pid_t server, int mb, int chunk_kb, double* up,
                    double* down, double* hash, double cpu[4]) {
  std::string blob(static_cast<size_t>(mb) << 20, '\0');
  std::mt19937_64 random(9);
  for (size_t i = 0; i + 8 <= blob.size(); i += 8) {
    uint64_t v = random();
    std::memcpy(&blob[i], &v, 8);
  }
  absl::Time t0 = absl::Now();
  cas::Digest digest = cas::Digest::Of(blob);
  *hash = mb * 1.048576 / absl::ToDoubleSeconds(absl::Now() - t0);
  service::ClientOptions options;
  options.server = "unix:kiln.sock";
  options.chunk_bytes = static_cast<size_t>(chunk_kb) << 10;
  service::KilnClient client(options);
  double server0 = CpuSeconds(server), client0 = CpuSeconds(getpid());
  t0 = absl::Now();
  absl::Status s = client.UploadBytes(blob, digest);
  double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  double server1 = CpuSeconds(server), client1 = CpuSeconds(getpid());
  cpu[0] = server1 - server0;
  cpu[1] = client1 - client0;
  *up = s.ok() ? mb * 1.048576 / seconds : 0;
  if (!s.ok()) std::fprintf(stderr, "upload: %s\n", s.ToString().c_str());
  t0 = absl::Now();
  absl::StatusOr<std::string> back = client.DownloadBlob(digest);
  seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  cpu[2] = CpuSeconds(server) - server1;
  cpu[3] = CpuSeconds(getpid()) - client1;
  *down = back.ok() && *back == blob ? mb * 1.048576 / seconds : 0;
  if (!back.ok()) {
    std::fprintf(stderr, "download: %s\n", back.status().ToString().c_str());
  }
}

int Main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string v;
    if (!(v = FlagValue(arg, "kiln")).empty())
      flags.kiln = v;
    else if (!(v = FlagValue(arg, "clients")).empty())
      flags.clients = std::atoi(v.c_str());
    else if (!(v = FlagValue(arg, "runs")).empty())
      flags.runs = std::atoi(v.c_str());
    else if (!(v = FlagValue(arg, "blob_mb")).empty())
      flags.blob_mb = std::atoi(v.c_str());
    else if (!(v = FlagValue(arg, "chunk_kb")).empty())
      flags.chunk_kb = std::atoi(v.c_str());
    else if (arg == "--cached")
      flags.cached = true;
    else if (arg == "--two_calls")
      flags.two_calls = true;
    else if (!(v = FlagValue(arg, "max_starts")).empty())
      flags.max_starts = v;
    else if (!(v = FlagValue(arg, "out")).empty())
      flags.out = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return 2;
    }
  }
  if (flags.kiln.empty() || flags.clients < 1 || flags.runs < flags.clients) {
    std::fprintf(stderr, "usage: b9 --kiln=PATH [--clients=N] [--runs=M>=N]\n");
    return 2;
  }
  flags.kiln = std::filesystem::absolute(flags.kiln);
  flags.out = std::filesystem::absolute(flags.out);
  std::string dir = (std::filesystem::temp_directory_path() / "kiln-b9-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return 1;
  if (chdir(dir.c_str()) != 0) return 1;

  pid_t server = fork();
  if (server == 0) {
    int fd = open("serve.out", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    std::vector<std::string> args = {flags.kiln,
                                     "serve",
                                     "--store",
                                     "store",
                                     "--listen",
                                     "unix:kiln.sock",
                                     "--jobs",
                                     "2",
                                     "--max-streams-per-client",
                                     "10000",
                                     "--max-streams",
                                     "10000"};
    if (!flags.max_starts.empty()) {
      args.insert(args.end(), {"--max-starts", flags.max_starts});
    }
    std::vector<char*> argv_server;
    for (std::string& a : args) argv_server.push_back(a.data());
    argv_server.push_back(nullptr);
    execv(flags.kiln.c_str(), argv_server.data());
    _exit(127);
  }
  bool up = false;
  for (int i = 0; i < 600 && !up; ++i) {
    std::ifstream in("serve.out");
    std::stringstream text;
    text << in.rdbuf();
    up = text.str().find("serving on") != std::string::npos;
    if (!up) absl::SleepFor(absl::Milliseconds(50));
  }
  if (!up) {
    std::fprintf(stderr, "kiln serve did not start\n");
    kill(server, SIGKILL);
    waitpid(server, nullptr, 0);
    std::filesystem::remove_all(dir);  // nothing of the attempt is left
    return 1;
  }

  std::vector<ClientResult> results(flags.clients);
  std::vector<std::thread> threads;
  absl::Time start = absl::Now();
  for (int c = 0; c < flags.clients; ++c) {
    int runs = flags.runs / flags.clients + (c < flags.runs % flags.clients);
    threads.emplace_back(RunClient, c, runs, std::cref(flags), &results[c]);
  }
  for (auto& t : threads) t.join();
  double wall = absl::ToDoubleSeconds(absl::Now() - start);

  double up_mbps = 0, down_mbps = 0, hash_mbps = 0;
  double cpu[4] = {0, 0, 0, 0};
  if (flags.blob_mb > 0) {
    BlobThroughput(server, flags.blob_mb, flags.chunk_kb, &up_mbps, &down_mbps,
                   &hash_mbps, cpu);
  }

  // Every run is recorded and final in the store.
  service::ClientOptions options;
  options.server = "unix:kiln.sock";
  service::KilnClient client(options);
  int listed = 0, listed_final = 0;
  v1::ListRunsRequest list;
  list.set_page_size(1000);
  do {
    v1::ListRunsResponse page;
    auto context = client.NewContext(absl::Seconds(60));
    if (!client.stub().ListRuns(context.get(), list, &page).ok()) break;
    for (const v1::Run& run : page.runs()) {
      ++listed;
      listed_final += run.state() == v1::RUN_SUCCEEDED;
    }
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());

  long rss_kb = PeakRssKb(server);
  kill(server, SIGTERM);
  int status = 0;
  waitpid(server, &status, 0);

  int succeeded = 0, lost = 0;
  std::vector<double> latencies, starts;
  for (const ClientResult& r : results) {
    starts.insert(starts.end(), r.start_ms.begin(), r.start_ms.end());
    succeeded += r.succeeded;
    lost += r.lost;
    latencies.insert(latencies.end(), r.latencies_ms.begin(),
                     r.latencies_ms.end());
    for (size_t i = 0; i < r.errors.size() && i < 3; ++i) {
      std::fprintf(stderr, "error: %s\n", r.errors[i].c_str());
    }
  }
  double p50 = Percentile(latencies, 0.50);
  double p99 = Percentile(latencies, 0.99);
  double max = Percentile(latencies, 1.0);
  std::string json = absl::StrFormat(
      "{\"id\":\"B9\",\"cached\":%s,\"calls\":\"%s\",\"clients\":%d,\"runs\":%"
      "d,\"succeeded\":%"
      "d,"
      "\"lost\":%d,\"listed\":%d,\"listed_succeeded\":%d,\"events\":%d,"
      "\"p50_event_latency_ms\":%.2f,\"p99_event_latency_ms\":%.2f,"
      "\"max_event_latency_ms\":%.2f,\"p50_start_latency_ms\":%.2f,"
      "\"p99_start_latency_ms\":%.2f,\"max_starts\":\"%s\","
      "\"server_peak_rss_mb\":%.1f,"
      "\"wall_s\":%.1f,\"runs_per_s\":%.1f,\"blob_mb\":%d,"
      "\"chunk_kb\":%d,\"upload_mb_s\":%.0f,\"download_mb_s\":%.0f,"
      "\"client_hash_mb_s\":%.0f,\"upload_cpu_s\":{\"server\":%.2f,"
      "\"client\":%.2f},\"download_cpu_s\":{\"server\":%.2f,"
      "\"client\":%.2f},"
      "\"target\":\"none lost; RSS bounded; cached p99 event latency <= "
      "100 ms; blob transfer >= 500 MB/s each way\","
      "\"date\":\"%s\"}\n",
      flags.cached ? "true" : "false",
      flags.two_calls ? "SubmitRun+WatchRun" : "SubmitAndWatchRun",
      flags.clients, flags.runs, succeeded, lost, listed, listed_final,
      static_cast<int>(latencies.size()), p50, p99, max,
      Percentile(starts, 0.50), Percentile(starts, 0.99),
      flags.max_starts.empty() ? "default" : flags.max_starts.c_str(),
      rss_kb / 1024.0, wall, flags.runs / wall, flags.blob_mb, flags.chunk_kb,
      up_mbps, down_mbps, hash_mbps, cpu[0], cpu[1], cpu[2], cpu[3],
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  std::fputs(json.c_str(), stdout);
  std::ofstream(flags.out) << json;
  std::filesystem::remove_all(dir);
  return lost == 0 && succeeded == flags.runs ? 0 : 1;
}

}  // namespace
}  // namespace kiln::bench

int main(int argc, char** argv) { return kiln::bench::Main(argc, argv); }
