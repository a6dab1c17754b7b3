#include "proto/json.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "kiln/v1/run.pb.h"

namespace kiln::proto {
namespace {

namespace pb = google::protobuf;

// Messages with every JSON shape the events and runs have: oneofs, nested
// and repeated messages, maps, enums (top-level and nested), timestamps,
// 64-bit integers (quoted), negative numbers, escapes, empty values.
std::vector<std::unique_ptr<pb::Message>> Samples() {
  std::vector<std::unique_ptr<pb::Message>> out;
  {
    auto* running = new v1::RunEvent;
    running->set_run_id("r1");
    running->set_sequence(18446744073709551615ull);
    running->mutable_time()->set_seconds(1764700000);
    running->mutable_time()->set_nanos(120000000);
    running->mutable_task_state()->set_task("build \"x\"\n\t\\");
    running->mutable_task_state()->set_state(v1::TASK_RUNNING);
    running->mutable_task_state()->set_attempt(2);
    out.emplace_back(running);
    auto* cached = new v1::RunEvent(*running);
    auto* ts = cached->mutable_task_state();
    ts->set_state(v1::TASK_CACHED);
    ts->set_exit_code(-3);
    (*ts->mutable_outputs())["bin"] = "sha256:ab";
    (*ts->mutable_outputs())["a"] = "";
    (*ts->mutable_results())["digest"] = "é ☃";
    ts->mutable_approval()->mutable_deadline()->set_seconds(1);
    out.emplace_back(cached);
    auto* log = new v1::RunEvent;
    log->mutable_log()->set_task("t");
    log->mutable_log()->set_stream(v1::LogLine::STDERR);
    log->mutable_log()->set_text(std::string("nul\0byte", 8));
    out.emplace_back(log);
    auto* state = new v1::RunEvent;
    state->mutable_run_state()->set_state(v1::RUN_SUCCEEDED);
    out.emplace_back(state);
    out.emplace_back(new v1::RunEvent);  // empty
    auto* run = new v1::Run;
    run->set_id("r2");
    run->set_state(v1::RUN_FAILED);
    for (int i = 0; i < 3; ++i) {
      v1::TaskStatus* t = run->add_tasks();
      t->set_name("t" + std::to_string(i));
      t->set_attempts(i);
      (*t->mutable_outputs())["o"] = "sha256:" + std::to_string(i);
      t->mutable_started()->set_seconds(i);
    }
    out.emplace_back(run);
    auto* value = new pb::Value;  // a well-known type with its own mapping
    (*value->mutable_struct_value()->mutable_fields())["k"].set_number_value(
        1.5);
    out.emplace_back(value);
  }
  return out;
}

std::vector<pb::util::JsonPrintOptions> Options() {
  std::vector<pb::util::JsonPrintOptions> out(4);
  out[1].preserve_proto_field_names = true;
  out[2].preserve_proto_field_names = true;
  out[2].always_print_primitive_fields = true;
  out[3].always_print_enums_as_ints = true;
  out[3].add_whitespace = true;
  return out;
}

TEST(ProtoJsonTest, PrintsWhatMessageToJsonStringPrints) {
  const auto samples = Samples();
  for (const auto& options : Options()) {
    for (const auto& m : samples) {
      std::string want;
      ASSERT_TRUE(pb::util::MessageToJsonString(*m, &want, options).ok());
      for (int again = 0; again < 2; ++again) {  // cold and cached types
        std::string got = "prefix ";
        ASSERT_TRUE(AppendJson(*m, options, &got).ok());
        EXPECT_EQ(got, "prefix " + want) << m->GetTypeName();
      }
    }
  }
}

TEST(ProtoJsonTest, ConcurrentPrintersAgree) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const auto samples = Samples();
  std::vector<std::string> want;
  for (const auto& m : samples) {
    want.emplace_back();
    ASSERT_TRUE(pb::util::MessageToJsonString(*m, &want.back(), options).ok());
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        size_t k = (i + t) % want.size();
        std::string got;
        if (!AppendJson(*samples[k], options, &got).ok() || got != want[k]) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << t;
}

}  // namespace
}  // namespace kiln::proto
