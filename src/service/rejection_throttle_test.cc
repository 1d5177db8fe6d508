#include "service/rejection_throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace signet::service {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = FromUnixSeconds(1'800'000'000);

TEST(RejectionThrottleTest, AddressOfDropsThePort) {
  EXPECT_EQ(RejectionThrottle::AddressOf("192.0.2.7:4431"), "192.0.2.7");
  EXPECT_EQ(RejectionThrottle::AddressOf("[2001:db8::1]:443"), "[2001:db8::1]");
  EXPECT_EQ(RejectionThrottle::AddressOf("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(RejectionThrottle::AddressOf("unknown"), "unknown");
  EXPECT_EQ(RejectionThrottle::AddressOf(""), "");
}

TEST(RejectionThrottleTest, RecordsTheFirstOfAMinuteAndCountsTheRest) {
  RejectionThrottle throttle(3);
  for (int i = 0; i < 3; ++i) {
    auto d = throttle.Note("token_rejected", "192.0.2.7:" + std::to_string(1000 + i), kT0 + 1s * i);
    EXPECT_TRUE(d.record) << i;
    EXPECT_TRUE(d.released.empty());
  }
  for (int i = 3; i < 10; ++i) {
    EXPECT_FALSE(throttle.Note("token_rejected", "192.0.2.7:9", kT0 + 1s * i).record) << i;
  }
  // Another address, and another kind from the same address, have budgets of their own.
  EXPECT_TRUE(throttle.Note("token_rejected", "192.0.2.8:9", kT0 + 10s).record);
  EXPECT_TRUE(throttle.Note("login_failure", "192.0.2.7:9", kT0 + 10s).record);
  // Nothing has ended yet.
  EXPECT_TRUE(throttle.Flush(kT0 + 59s).empty());
  // The address's next rejection after its minute is recorded, with the held count.
  auto next = throttle.Note("token_rejected", "192.0.2.7:9", kT0 + 60s);
  EXPECT_TRUE(next.record);
  ASSERT_EQ(next.released.size(), 1u);
  EXPECT_EQ(next.released[0].kind, "token_rejected");
  EXPECT_EQ(next.released[0].address, "192.0.2.7");
  EXPECT_EQ(next.released[0].count, 7);
  EXPECT_EQ(next.released[0].first, kT0 + 3s);
  EXPECT_EQ(next.released[0].last, kT0 + 9s);
}

TEST(RejectionThrottleTest, FlushReleasesEndedMinutesOnceAndRequeueGivesThemBack) {
  RejectionThrottle throttle(1);
  throttle.Note("login_failure", "198.51.100.1:1", kT0);
  throttle.Note("login_failure", "198.51.100.1:2", kT0 + 1s);
  throttle.Note("login_failure", "198.51.100.1:3", kT0 + 2s);
  auto held = throttle.Flush(kT0 + 61s);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].count, 2);
  EXPECT_TRUE(throttle.Flush(kT0 + 200s).empty());
  throttle.Requeue(held);
  held = throttle.Flush(kT0 + 201s);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].count, 2);
  // After its minute the address starts afresh.
  EXPECT_TRUE(throttle.Note("login_failure", "198.51.100.1:4", kT0 + 300s).record);
}

TEST(RejectionThrottleTest, ManyAddressesShareOneBucketBeyondTheCap) {
  RejectionThrottle throttle(1);
  for (size_t i = 0; i < RejectionThrottle::kMaxAddresses; ++i) {
    ASSERT_TRUE(throttle.Note("token_rejected", "10.0." + std::to_string(i) + ":1", kT0).record);
  }
  // The table is full: new addresses share "*", whose budget is one.
  EXPECT_TRUE(throttle.Note("token_rejected", "203.0.113.1:1", kT0).record);
  EXPECT_FALSE(throttle.Note("token_rejected", "203.0.113.2:1", kT0).record);
  auto held = throttle.Flush(kT0 + 60s);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].address, "*");
  EXPECT_EQ(held[0].count, 1);
}

TEST(RejectionThrottleTest, ZeroRecordsEverything) {
  RejectionThrottle throttle(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(throttle.Note("x", "192.0.2.1:1", kT0).record);
}

}  // namespace
}  // namespace signet::service
