#include "common/clock.h"

#include <ctime>

namespace signet {

int64_t ToUnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

TimePoint FromUnixSeconds(int64_t seconds) {
  // TimePoint counts nanoseconds in 64 bits; seconds beyond its range (a damaged or tampered
  // database value) saturate instead of overflowing, so "locked until" a huge time stays locked.
  namespace chrono = std::chrono;
  static const int64_t kMax =
      chrono::duration_cast<chrono::seconds>(TimePoint::max().time_since_epoch()).count();
  static const int64_t kMin =
      chrono::duration_cast<chrono::seconds>(TimePoint::min().time_since_epoch()).count();
  if (seconds > kMax) return TimePoint::max();
  if (seconds < kMin) return TimePoint::min();
  return TimePoint(std::chrono::seconds(seconds));
}

std::optional<TimePoint> ParseRfc3339(std::string_view text) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
  if (text.size() != kShape.size()) return std::nullopt;
  for (size_t i = 0; i < kShape.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kShape[i] == 'd' ? !digit : text[i] != kShape[i]) return std::nullopt;
  }
  auto number = [&](size_t at, size_t length) {
    int v = 0;
    for (size_t i = at; i < at + length; ++i) v = v * 10 + (text[i] - '0');
    return v;
  };
  using namespace std::chrono;
  const year_month_day date{year{number(0, 4)}, month{static_cast<unsigned>(number(5, 2))},
                            day{static_cast<unsigned>(number(8, 2))}};
  const int h = number(11, 2), mi = number(14, 2), s = number(17, 2);
  if (!date.ok() || h > 23 || mi > 59 || s > 59) return std::nullopt;
  // TimePoint counts nanoseconds in 64 bits: about 1677-09-21 to 2262-04-11. A day outside that
  // (a year such as 9999 is well formed) would overflow the conversion, so it is refused.
  constexpr int64_t kFirstWholeDay = duration_cast<days>(TimePoint::duration::min()).count();
  constexpr int64_t kLastWholeDay = duration_cast<days>(TimePoint::duration::max()).count() - 1;
  const int64_t day = sys_days{date}.time_since_epoch().count();
  if (day < kFirstWholeDay || day > kLastWholeDay) return std::nullopt;
  return TimePoint(sys_days{date}) + hours{h} + minutes{mi} + seconds{s};
}

std::string FormatRfc3339(TimePoint t) {
  std::time_t secs = static_cast<std::time_t>(ToUnixSeconds(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace signet
