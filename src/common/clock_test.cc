#include "common/clock.h"

#include <gtest/gtest.h>

namespace signet {
namespace {

TEST(Rfc3339Test, ParsesWhatFormatRfc3339Writes) {
  const TimePoint t = FromUnixSeconds(1'795'872'201);
  EXPECT_EQ(FormatRfc3339(t), "2026-11-28T13:23:21Z");
  EXPECT_EQ(ParseRfc3339(FormatRfc3339(t)), t);
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), FromUnixSeconds(0));
  EXPECT_EQ(ParseRfc3339("2024-02-29T23:59:59Z"), FromUnixSeconds(1'709'251'199));
  // The ends of TimePoint's range.
  EXPECT_EQ(ParseRfc3339("2262-04-10T23:59:59Z"), FromUnixSeconds(9'223'286'399));
  EXPECT_EQ(ParseRfc3339("1677-09-22T00:00:00Z"), FromUnixSeconds(-9'223'286'400));
}

// Seconds a database might hold but TimePoint cannot: saturated, never overflowed (UBSan checks
// the multiplication this avoids).
TEST(UnixSecondsTest, OutOfRangeSecondsSaturate) {
  EXPECT_EQ(FromUnixSeconds(INT64_MAX), TimePoint::max());
  EXPECT_EQ(FromUnixSeconds(10'000'000'000), TimePoint::max());
  EXPECT_EQ(FromUnixSeconds(INT64_MIN), TimePoint::min());
  EXPECT_EQ(FromUnixSeconds(-10'000'000'000), TimePoint::min());
  EXPECT_EQ(ToUnixSeconds(FromUnixSeconds(9'223'286'399)), 9'223'286'399);
}

TEST(Rfc3339Test, RejectsOtherShapesAndImpossibleDates) {
  for (const char* bad :
       {"2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z", "2026-1-01T00:00:00Z", "2026-01-01T00:00:00+01:00",
        "2026-01-01T00:00:00.5Z", "2026-01-01t00:00:00z", "+026-01-01T00:00:00Z", "",
        // Well formed, but beyond what a 64-bit count of nanoseconds holds.
        "9999-12-31T23:59:59Z", "2262-04-11T00:00:00Z", "2262-04-11T23:59:59Z",
        "1677-09-21T23:59:59Z", "1000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace signet
