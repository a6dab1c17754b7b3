#include "proto/json.h"

#include <cstdint>
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

// Sets every field of `m`, recursively (depth-bounded), to a value that
// differs per field and per `seed`: integers of both signs and 64-bit
// extremes, every enum value in turn, strings with escapes and Unicode,
// timestamps of each fractional width, one entry per map.
void Fill(pb::Message* m, int seed, int depth) {
  const pb::Descriptor* d = m->GetDescriptor();
  const pb::Reflection* r = m->GetReflection();
  if (d->full_name() == "google.protobuf.Timestamp") {
    static const int kNanos[] = {0, 5000000, 123456000, 7};
    r->SetInt64(m, d->FindFieldByNumber(1), 1700000000 + seed * 86399);
    r->SetInt32(m, d->FindFieldByNumber(2), kNanos[seed % 4]);
    return;
  }
  static const char* const kStrings[] = {
      "plain",
      "quote\" back\\ slash",
      "tab\tnl\ncr\r\x01\x1f\x7f",
      "<a href=x>&amp;</a>",
      "\xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80",
      "line\xe2\x80\xa8para\xe2\x80\xa9",
      ""};
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    if (f->containing_oneof() != nullptr &&
        f->containing_oneof()->field(
            seed % f->containing_oneof()->field_count()) != f) {
      continue;  // one member of each oneof, a different one per seed
    }
    int v = seed * 31 + i;
    if (f->is_map()) {
      pb::Message* entry = r->AddMessage(m, f);
      Fill(entry, seed + i, depth + 1);
      continue;
    }
    int n = f->is_repeated() ? 1 + (seed + i) % 3 : 1;
    for (int k = 0; k < n; ++k) {
      switch (f->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_INT32:
          f->is_repeated() ? r->AddInt32(m, f, -v - k) : r->SetInt32(m, f, -v);
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT32:
          f->is_repeated() ? r->AddUInt32(m, f, 4000000000u + k)
                           : r->SetUInt32(m, f, 4000000000u - v);
          break;
        case pb::FieldDescriptor::CPPTYPE_INT64:
          f->is_repeated() ? r->AddInt64(m, f, INT64_MIN + k)
                           : r->SetInt64(m, f, -9000000000000000000 + v);
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT64:
          f->is_repeated() ? r->AddUInt64(m, f, UINT64_MAX - k)
                           : r->SetUInt64(m, f, UINT64_MAX - v);
          break;
        case pb::FieldDescriptor::CPPTYPE_BOOL:
          f->is_repeated() ? r->AddBool(m, f, true) : r->SetBool(m, f, true);
          break;
        case pb::FieldDescriptor::CPPTYPE_ENUM: {
          const pb::EnumDescriptor* e = f->enum_type();
          int number = e->value((v + k) % e->value_count())->number();
          if (number == 0) number = e->value(e->value_count() - 1)->number();
          f->is_repeated() ? r->AddEnumValue(m, f, number)
                           : r->SetEnumValue(m, f, number);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_STRING: {
          std::string text = kStrings[(v + k) % 7];
          if (text.empty()) text = "x";
          f->is_repeated() ? r->AddString(m, f, text)
                           : r->SetString(m, f, text);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 4) {
            Fill(f->is_repeated() ? r->AddMessage(m, f)
                                  : r->MutableMessage(m, f),
                 seed + i + k, depth + 1);
          }
          break;
        default:
          break;  // float, double: left unset (they print through protobuf)
      }
    }
  }
}

// Every field of the event and run messages, each oneof member in turn, in
// every option set: the same bytes as protobuf's printer.
TEST(ProtoJsonTest, EveryFieldOfTheEventAndRunTypes) {
  for (const auto& options : Options()) {
    for (int seed = 0; seed < 8; ++seed) {
      v1::RunEvent event;
      Fill(&event, seed, 0);
      v1::Run run;
      Fill(&run, seed, 0);
      for (const pb::Message* m : {static_cast<pb::Message*>(&event),
                                   static_cast<pb::Message*>(&run)}) {
        std::string want;
        ASSERT_TRUE(pb::util::MessageToJsonString(*m, &want, options).ok());
        std::string got;
        ASSERT_TRUE(AppendJson(*m, options, &got).ok());
        EXPECT_EQ(got, want) << m->GetTypeName() << " seed " << seed;
      }
    }
  }
}

// What the direct printer leaves to protobuf: invalid UTF-8 (protobuf drops
// the bytes), a timestamp out of range (an error either way), an enum
// number the type does not declare.
TEST(ProtoJsonTest, EdgeCasesMatchProtobuf) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::vector<v1::RunEvent> events(5);
  events[0].mutable_log()->set_text("ok");
  events[0].mutable_log()->mutable_text()->append("\xff\xfe bad \xc0\x80");
  events[1].mutable_time()->set_seconds(253402300800);  // year 10000
  events[2].mutable_time()->set_nanos(1000000000);
  events[3].mutable_task_state()->set_state(static_cast<v1::TaskState>(77));
  events[4].mutable_time()->set_seconds(-62135596800);  // 0001-01-01
  for (const v1::RunEvent& e : events) {
    std::string want;
    bool want_ok = pb::util::MessageToJsonString(e, &want, options).ok();
    std::string got;
    EXPECT_EQ(AppendJson(e, options, &got).ok(), want_ok) << e.DebugString();
    if (want_ok) EXPECT_EQ(got, want) << e.DebugString();
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
