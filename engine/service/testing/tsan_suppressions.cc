// ThreadSanitizer suppressions for service tests. Debian's Abseil is not
// built with TSan, and gRPC 1.51 synchronizes with absl::Mutex internally,
// so TSan cannot see those happens-before edges and reports races inside
// them (e.g. absl's deadlock-detection graph). Only races whose stacks pass
// through those uninstrumented libraries are suppressed; kiln's own code
// uses kiln::Mutex (std::mutex), which TSan sees.
extern "C" const char* __tsan_default_suppressions() {
  return
      // Every Debian Abseil library (Mutex, deadlock graph, Status payloads,
      // strings used by gRPC threads).
      "race:libabsl_\n"
      // gRPC and its templates inlined into kiln binaries, handing requests
      // between gRPC threads.
      "race:libgrpc.so\n"
      "race:libgrpc++.so\n"
      "race:libgpr.so\n"
      "race:libupb.so\n"
      "race:grpc::internal::\n"
      // shared_ptr reference counts released on gRPC threads through an
      // uninstrumented library's copy of libstdc++'s release path (seen
      // resolved to libyaml-cpp): the atomic decrement is invisible to TSan.
      "race:_M_release_last_use_cold\n"
      "deadlock:libgrpc.so\n";
}
