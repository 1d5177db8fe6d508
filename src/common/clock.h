// Clock: the only way signet code reads the time, so tests can inject it. Implementations must be
// safe to call from many threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace signet {

using TimePoint = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), for timestamps that are stored or shown.
  virtual TimePoint Now() const = 0;
};

// The system's UTC clock.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

// A clock that moves only when told to; for tests. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start) : now_(start.time_since_epoch().count()) {}
  TimePoint Now() const override { return TimePoint(TimePoint::duration(now_.load())); }
  void Advance(std::chrono::system_clock::duration d) { now_ += d.count(); }
  void Set(TimePoint t) { now_ = t.time_since_epoch().count(); }

 private:
  std::atomic<TimePoint::rep> now_;
};

// Seconds since the Unix epoch.
int64_t ToUnixSeconds(TimePoint t);
// Saturates: seconds beyond TimePoint's range (about 1677..2262) give TimePoint::min() or max().
TimePoint FromUnixSeconds(int64_t seconds);
// RFC 3339 UTC with second precision, e.g. "2026-11-22T13:23:21Z".
std::string FormatRfc3339(TimePoint t);
// The inverse: exactly the FormatRfc3339 form (20 characters, "Z", no fraction, no offset) of a
// real calendar date and time that TimePoint can hold (1677-09-22 to 2262-04-10); nullopt for
// anything else. Callers say what was wrong in their own terms (a query parameter, a server's
// answer, a flag).
std::optional<TimePoint> ParseRfc3339(std::string_view text);

}  // namespace signet
