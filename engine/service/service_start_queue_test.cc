// kiln serve's start queue (admission_gate.h) end to end: a submit waits
// its turn at the gate, not in the engine, and one whose deadline passes
// there starts nothing; many submits through one place all start and end.
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/service/service_test_fixture.h"

namespace kiln::service {
namespace {

TEST_F(ServiceTest, StartsWaitTheirTurnWithinTheirDeadline) {
  ServerOptions options;
  options.service.max_concurrent_starts = 1;
  StartUnix(options);
  auto client = UnixClient();
  engine_->HoldSubmits();

  // The first submit takes the only place and waits inside the engine.
  v1::SubmitRunRequest first_request;
  first_request.set_yaml(kTwoTaskPipeline);
  first_request.set_idempotency_key("a");
  v1::SubmitRunResponse first;
  grpc::Status first_status;
  std::thread holder([&] {
    auto context = client->NewContext(absl::Seconds(60));
    first_status =
        client->stub().SubmitRun(context.get(), first_request, &first);
  });
  const absl::Time give_up = absl::Now() + absl::Minutes(1);
  while (engine_->submits_waiting() < 1 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_EQ(engine_->submits_waiting(), 1);

  // The second waits at the gate, not in the engine, and gives up at its
  // deadline without starting anything.
  v1::SubmitRunRequest request;
  request.set_yaml(kTwoTaskPipeline);
  request.set_idempotency_key("b");
  v1::SubmitRunResponse response;
  auto context = client->NewContext(absl::Milliseconds(300));
  grpc::Status late =
      client->stub().SubmitRun(context.get(), request, &response);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << late.error_message();
  EXPECT_EQ(engine_->submit_calls(), 1);
  // The server's copy of the deadline is a little later than the client's
  // (it counts from the request's arrival) and the queue looks at it every
  // 50 ms: give it time to leave the line before the place frees. (A start
  // that wins that race is no different from one finishing as its client
  // gives up; the idempotency key covers both.)
  absl::SleepFor(absl::Seconds(1));

  engine_->ReleaseSubmits();
  holder.join();
  ASSERT_TRUE(first_status.ok()) << first_status.error_message();
  ASSERT_FALSE(first.run_id().empty());
  absl::StatusOr<v1::RunState> state =
      client->Watch(first.run_id(), 0, [](const v1::RunEvent&) {});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED);
  // Had the server kept the abandoned submit waiting, it would reach the
  // engine once the place freed.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(engine_->submit_calls(), 1);

  // Many callers through one place: every run starts, in turn, and ends.
  constexpr int kClients = 12;
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<v1::RunState>> states(kClients);
  std::vector<std::string> ids(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto own = UnixClient();
      v1::SubmitRunRequest r;
      r.set_yaml(kTwoTaskPipeline);
      r.set_idempotency_key(absl::StrCat("many-", i));
      states[i] = own->SubmitAndWatch(
          r, [](const v1::RunEvent&) {}, &ids[i]);
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> distinct;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(states[i].ok()) << states[i].status();
    EXPECT_EQ(*states[i], v1::RUN_SUCCEEDED);
    distinct.insert(ids[i]);
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kClients));
  EXPECT_EQ(engine_->submit_calls(), 1 + kClients);
}

}  // namespace
}  // namespace kiln::service
