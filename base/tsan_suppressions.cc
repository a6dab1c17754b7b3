// ThreadSanitizer settings for binaries that run gRPC (service tests, and
// `kiln serve` when built with --config=tsan); inert without TSan.
//
// Debian's gRPC, Abseil, protobuf and upb are not built with TSan, and gRPC
// 1.51 synchronizes with absl::Mutex internally, so TSan cannot see those
// happens-before edges. What it does see from those libraries are the calls
// they make to intercepted functions (malloc/free, memcpy, epoll, ...),
// which then look racy against each other and against kiln's instrumented
// code. ignore_noninstrumented_modules=1 (TSan's documented option for
// uninstrumented libraries, the module-wide form of `called_from_lib`)
// makes TSan ignore exactly those intercepted calls made from uninstrumented
// code. Every access made by instrumented code — kiln's own, including its
// gRPC handlers and the gRPC templates inlined into it — is still checked.
//
// What this must NOT do is suppress by a frame that every gRPC handler call
// has on its stack. TSan matches `race:` patterns against every frame of
// both access stacks, of the threads' creation stacks and of the heap
// block's allocation stack, and gRPC creates every handler thread and calls
// every handler, so `race:libgrpc.so`, `race:libgpr.so` or
// `race:grpc::internal::` would also hide a race in kiln's own handler code.
// //engine/service/testing:tsan_check_test proves such a race is reported
// (racy_service).
extern "C" const char* __tsan_default_options() {
  return "ignore_noninstrumented_modules=1";
}

extern "C" const char* __tsan_default_suppressions() {
  return
      // shared_ptr reference counts released on gRPC threads through an
      // uninstrumented library's copy of libstdc++'s release path (seen
      // resolved to libyaml-cpp): the atomic decrement is invisible to TSan.
      // An exact libstdc++ frame, on no handler's path.
      "race:_M_release_last_use_cold\n"
      // gRPC's C++ templates inlined (and so instrumented) into kiln
      // binaries, handing a call's op set between gRPC threads through
      // gRPC's uninstrumented locks. `race_top` matches only the frame that
      // made the access, so a race whose access is in kiln's handler (or
      // reactor) code is still reported, whatever gRPC frames lie below it.
      "race_top:grpc::internal::CallOpSet<\n"
      "race_top:grpc::internal::CallOpSendMessage::\n"
      "race_top:grpc::internal::InterceptorBatchMethodsImpl::\n"
      "race_top:std::function<grpc::Status (void const*)>::operator=\n"
      // The connection gate's socket mutator, written by the thread that
      // builds the server and deleted on a gRPC executor thread when the
      // last channel-args reference to it goes: that reference count lives
      // in uninstrumented libgrpc (seen once, watch_owner_gone_test). Only
      // the mutator's own destructor function, on no handler's path.
      "race_top:kiln::service::(anonymous namespace)::Destroy\n"
      // Debian's uninstrumented cpp-httplib writing and sending a static
      // buffer of its own from two server threads (memcpy and send, both
      // called from inside the library; seen once in kube client_test):
      // ignore_noninstrumented_modules did not cover the send interceptor.
      // Only calls made from the library itself; kiln's handlers are still
      // checked (//engine/service/testing:tsan_http_check_test). Like every
      // line here it takes effect only where the hook is in the executable:
      // a test linking this library must be linkstatic.
      "called_from_lib:libcpp-httplib.so\n";
}
