#include "service/rejection_throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace signet::service {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = FromUnixSeconds(1'800'000'000);

TEST(RejectionThrottleTest, AddressOfDropsThePortAndKeepsAnIpv6Slash64) {
  EXPECT_EQ(RejectionThrottle::AddressOf("192.0.2.7:4431"), "192.0.2.7");
  EXPECT_EQ(RejectionThrottle::AddressOf("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443"),
            "[2001:db8:1:2::]/64");
  EXPECT_EQ(RejectionThrottle::AddressOf("[2001:db8:1:2::99]:1"), "[2001:db8:1:2::]/64");
  EXPECT_EQ(RejectionThrottle::AddressOf("[::1]:8443"), "[::]/64");
  // IPv4 clients of a dual-stack listener keep their own addresses.
  EXPECT_EQ(RejectionThrottle::AddressOf("[::ffff:192.0.2.7]:1"), "192.0.2.7");
  EXPECT_EQ(RejectionThrottle::AddressOf("[::ffff:198.51.100.1]:2"), "198.51.100.1");
  EXPECT_EQ(RejectionThrottle::AddressOf("[not an address]:1"), "[not an address]:1");
  EXPECT_EQ(RejectionThrottle::AddressOf("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(RejectionThrottle::AddressOf("unknown"), "unknown");
  EXPECT_EQ(RejectionThrottle::AddressOf(""), "");
}

TEST(RejectionThrottleTest, RecordsTheFirstOfAMinuteAndCountsTheRestByReason) {
  RejectionThrottle throttle(3);
  for (int i = 0; i < 3; ++i) {
    auto d = throttle.Note("token_rejected", "unknown_token",
                           "192.0.2.7:" + std::to_string(1000 + i), kT0 + 1s * i);
    EXPECT_TRUE(d.record) << i;
    EXPECT_TRUE(d.released.empty());
  }
  for (int i = 3; i < 10; ++i) {
    // Every reason of the kind shares the budget: a live token is held like an unknown one.
    const char* reason = i == 5 ? "certificate_mismatch" : "unknown_token";
    EXPECT_FALSE(throttle.Note("token_rejected", reason, "192.0.2.7:9", kT0 + 1s * i).record);
  }
  // Another address, and another kind from the same address, have budgets of their own.
  EXPECT_TRUE(throttle.Note("token_rejected", "unknown_token", "192.0.2.8:9", kT0 + 10s).record);
  EXPECT_TRUE(throttle.Note("login_failure", "invalid_argument", "192.0.2.7:9", kT0 + 10s).record);
  // Nothing has ended yet.
  EXPECT_TRUE(throttle.Flush(kT0 + 59s).empty());
  // The address's next rejection after its minute is recorded, with the held count.
  auto next = throttle.Note("token_rejected", "unknown_token", "192.0.2.7:9", kT0 + 60s);
  EXPECT_TRUE(next.record);
  ASSERT_EQ(next.released.size(), 1u);
  const RejectionThrottle::Held& held = next.released[0];
  EXPECT_EQ(held.kind, "token_rejected");
  EXPECT_EQ(held.address, "192.0.2.7");
  EXPECT_EQ(held.count, 7);
  EXPECT_EQ(held.reasons,
            (std::map<std::string, int64_t>{{"certificate_mismatch", 1}, {"unknown_token", 6}}));
  EXPECT_EQ(held.first, kT0 + 3s);
  EXPECT_EQ(held.last, kT0 + 9s);
}

TEST(RejectionThrottleTest, FlushReleasesEndedMinutesOnceAndRequeueGivesThemBack) {
  RejectionThrottle throttle(1);
  throttle.Note("login_failure", "invalid_argument", "198.51.100.1:1", kT0);
  throttle.Note("login_failure", "invalid_argument", "198.51.100.1:2", kT0 + 1s);
  throttle.Note("login_failure", "invalid_argument", "198.51.100.1:3", kT0 + 2s);
  auto held = throttle.Flush(kT0 + 61s);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].count, 2);
  EXPECT_TRUE(throttle.Flush(kT0 + 200s).empty());
  throttle.Requeue(held);
  throttle.Requeue(held);  // the same address again: merged
  held = throttle.Flush(kT0 + 201s);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].count, 4);
  EXPECT_EQ(held[0].reasons.at("invalid_argument"), 4);
  // After its minute the address starts afresh.
  EXPECT_TRUE(
      throttle.Note("login_failure", "invalid_argument", "198.51.100.1:4", kT0 + 300s).record);
}

// Many addresses, each under its own budget, still share one: beyond it, what they send is held
// in one bucket, so a /48 of IPv6 addresses cannot leave an entry per address.
TEST(RejectionThrottleTest, ManyAddressesShareAGlobalBudget) {
  RejectionThrottle throttle(2);
  const int64_t global = 2 * RejectionThrottle::kGlobalFactor;
  int64_t recorded = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string address = "[2001:db8:" + std::to_string(i) + "::1]:443";
    recorded += throttle.Note("token_rejected", "unknown_token", address, kT0).record ? 1 : 0;
  }
  EXPECT_EQ(recorded, global);
  auto held = throttle.Flush(kT0 + 60s);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].address, "*");
  EXPECT_EQ(held[0].count, 1000 - global);
  // A new minute, a new budget.
  EXPECT_TRUE(throttle.Note("token_rejected", "unknown_token", "192.0.2.1:1", kT0 + 61s).record);
}

TEST(RejectionThrottleTest, ZeroRecordsEverything) {
  RejectionThrottle throttle(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(throttle.Note("x", "y", "192.0.2.1:1", kT0).record);
}

}  // namespace
}  // namespace signet::service
