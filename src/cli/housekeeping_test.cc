#include "cli/housekeeping.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "service/audit_sink.h"
#include "service/testing/fakes.h"

namespace signet::cli {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = FromUnixSeconds(1700000000);

// Polls `done` for up to 10 s (the thread runs every few milliseconds; the bound only guards
// against a hang).
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

class HousekeepingTest : public ::testing::Test {
 protected:
  HousekeepingTest() : clock_(kT0) {
    store::KeyRecord key;
    key.id = "k_1";
    key.name = "release";
    key.algorithm = "ec-p256";
    EXPECT_TRUE(store_.InsertKey(key).ok());
    store::AccountRecord account;
    account.id = "a_1";
    account.name = "alice";
    EXPECT_TRUE(store_.InsertAccount(account).ok());
  }

  // An activation expiring at `expires`, with a SAD hash made from `tag`.
  void AddActivation(uint8_t tag, TimePoint expires) {
    store::ActivationRecord a;
    a.sad_hash = Bytes(32, tag);
    a.account_id = "a_1";
    a.key_id = "k_1";
    a.hash_algorithm = "sha256";
    a.num_signatures = 1;
    a.created_at = expires - 5min;
    a.expires_at = expires;
    a.hashes.push_back(store::ActivationHash{Bytes(32, 0xaa), std::nullopt});
    ASSERT_TRUE(store_.InsertActivation(a).ok());
  }
  void AddToken(uint8_t tag, TimePoint expires) {
    store::BearerTokenRecord t;
    t.token_hash = Bytes(32, tag);
    t.account_id = "a_1";
    t.created_at = expires - 15min;
    t.expires_at = expires;
    ASSERT_TRUE(store_.InsertBearerToken(t).ok());
  }
  bool HasActivation(uint8_t tag) { return store_.GetActivation(Bytes(32, tag)).ok(); }
  bool HasToken(uint8_t tag) { return store_.GetBearerToken(Bytes(32, tag)).ok(); }
  double Deleted(const char* kind) {
    return metrics_.Value("signet_housekeeping_deleted_total", {{"kind", kind}});
  }

  signet::testing::MemoryStore store_;
  FakeClock clock_;
  server::Metrics metrics_;
};

// Keeps what it is given.
class KeepingSink final : public service::AuditSink {
 public:
  Status Record(const service::AuditEvent& event) override {
    events.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const service::AuditEvent&, const service::AuditedChange&) override {
    return InternalError("not used");
  }
  Status RecordIf(const service::AuditEvent&, const service::AuditCheck&) override {
    return InternalError("not used");
  }
  std::vector<service::AuditEvent> events;
};

// A wall clock stepped between two passes (by more than NTP would slew it) is a clock_step entry
// saying how far; time passing as it should, or a small drift, records nothing.
TEST_F(HousekeepingTest, AClockStepIsRecorded) {
  KeepingSink audit;
  std::chrono::nanoseconds real = 1h;
  HousekeepingTask task = ClockStepTask(audit, clock_, [&real] { return real; });
  EXPECT_EQ(task.kind, "clock_steps");
  // The task reads the clock itself, next to the real time: the pass's time (given) may be old.
  auto run = [&](TimePoint wall) {
    clock_.Set(wall);
    return *task.run(kT0 - 1h);
  };
  ASSERT_EQ(run(kT0), 0);  // the first pass only takes note
  real += 60s;
  ASSERT_EQ(run(kT0 + 60s), 0);
  real += 60s;
  ASSERT_EQ(run(kT0 + 120s + 900ms), 0);  // under a second: drift, not a step
  real += 60s;
  ASSERT_EQ(run(kT0 + 185s + 900ms), 1);  // 5 s ahead
  ASSERT_EQ(audit.events.size(), 1u);
  const service::AuditEvent& ahead = audit.events.back();
  EXPECT_EQ(ahead.action, service::AuditAction::kClockStep);
  EXPECT_EQ(service::AuditActionName(ahead.action), "clock_step");
  EXPECT_EQ(ahead.actor.auth_method, service::AuthMethod::kSystem);
  EXPECT_EQ(ahead.details.at("step_ms"), "5000");
  EXPECT_EQ(ahead.details.at("expected"), FormatRfc3339(kT0 + 180s + 900ms));
  EXPECT_EQ(ahead.details.at("now"), FormatRfc3339(kT0 + 185s + 900ms));
  real += 60s;
  ASSERT_EQ(run(kT0 + 200s), 1);  // set back by 45.9 s
  EXPECT_EQ(audit.events.back().details.at("step_ms"), "-45900");
  real += 60s;
  ASSERT_EQ(run(kT0 + 260s), 0);  // runs on from where it was set
  EXPECT_GT(BootTime().count(), 0);
}

TEST_F(HousekeepingTest, RunOnceDeletesWhatExpiredBeforeTheClocksNow) {
  AddActivation(1, kT0 - 1s);
  AddActivation(2, kT0 + 1s);
  AddToken(1, kT0 - 1s);
  AddToken(2, kT0 + 1min);
  Housekeeper h(StoreHousekeepingTasks(store_), clock_, metrics_, 1h);
  h.RunOnce();
  EXPECT_FALSE(HasActivation(1));
  EXPECT_TRUE(HasActivation(2));
  EXPECT_FALSE(HasToken(1));
  EXPECT_TRUE(HasToken(2));
  EXPECT_EQ(Deleted("activations"), 1);
  EXPECT_EQ(Deleted("bearer_tokens"), 1);
  EXPECT_EQ(metrics_.Value("signet_housekeeping_runs_total"), 1);

  // Time moves on: the rest expires.
  clock_.Advance(2min);
  h.RunOnce();
  EXPECT_FALSE(HasActivation(2));
  EXPECT_FALSE(HasToken(2));
  EXPECT_EQ(Deleted("activations"), 2);
  EXPECT_EQ(Deleted("bearer_tokens"), 2);
}

TEST_F(HousekeepingTest, ThreadRunsAtStartAndThenEveryInterval) {
  AddActivation(1, kT0 - 1s);
  AddActivation(2, kT0 + 30s);
  Housekeeper h(StoreHousekeepingTasks(store_), clock_, metrics_, 5ms);
  ASSERT_TRUE(h.Start().ok());
  ASSERT_TRUE(Eventually([&] { return Deleted("activations") == 1; }));
  EXPECT_TRUE(HasActivation(2));
  clock_.Advance(1min);
  ASSERT_TRUE(Eventually([&] { return Deleted("activations") == 2; }));
  EXPECT_FALSE(HasActivation(2));
  h.Stop();
  EXPECT_GE(metrics_.Value("signet_housekeeping_runs_total"), 2);
}

TEST_F(HousekeepingTest, StopDoesNotWaitForTheInterval) {
  Housekeeper h(StoreHousekeepingTasks(store_), clock_, metrics_, 1h);
  ASSERT_TRUE(h.Start().ok());
  ASSERT_TRUE(Eventually([&] { return metrics_.Value("signet_housekeeping_runs_total") == 1; }));
  const auto before = std::chrono::steady_clock::now();
  h.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  h.Stop();  // idempotent
}

TEST_F(HousekeepingTest, StartTwiceFails) {
  Housekeeper h(StoreHousekeepingTasks(store_), clock_, metrics_, 1h);
  ASSERT_TRUE(h.Start().ok());
  Status again = h.Start();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(HousekeepingTest, FailuresAreCountedAndReportedOncePerKindAndNeverStopTheOthers) {
  AddToken(1, kT0 - 1s);
  std::atomic<int> broken_calls{0};
  std::vector<HousekeepingTask> tasks = {
      {"broken_a",
       [&](TimePoint) -> Result<int64_t> {
         ++broken_calls;
         return Unavailable("database is locked");
       }},
      {"broken_b", [](TimePoint) -> Result<int64_t> { return DataLoss("disk image malformed"); }},
      {"throws", [](TimePoint) -> Result<int64_t> { throw std::runtime_error("boom"); }},
  };
  for (auto& t : StoreHousekeepingTasks(store_)) tasks.push_back(std::move(t));
  std::mutex mu;
  std::vector<std::string> lines;
  Housekeeper h(std::move(tasks), clock_, metrics_, 1h, [&](std::string_view line) {
    std::lock_guard lock(mu);
    lines.emplace_back(line);
  });
  h.RunOnce();
  h.RunOnce();
  h.RunOnce();
  EXPECT_EQ(broken_calls, 3);
  EXPECT_EQ(metrics_.Value("signet_housekeeping_errors_total", {{"kind", "broken_a"}}), 3);
  EXPECT_EQ(metrics_.Value("signet_housekeeping_errors_total", {{"kind", "broken_b"}}), 3);
  EXPECT_EQ(metrics_.Value("signet_housekeeping_errors_total", {{"kind", "throws"}}), 3);
  EXPECT_EQ(metrics_.Value("signet_housekeeping_errors_total", {{"kind", "bearer_tokens"}}), 0);
  EXPECT_EQ(Deleted("bearer_tokens"), 1);
  EXPECT_FALSE(HasToken(1));
  EXPECT_EQ(metrics_.Value("signet_housekeeping_runs_total"), 3);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("broken_a failed: database is locked"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("broken_b failed: disk image malformed"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("throws"), std::string::npos) << lines[2];
}

}  // namespace
}  // namespace signet::cli
