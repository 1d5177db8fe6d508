// RejectionThrottle: how many anonymous rejections from one client address the audit log records
// one by one. A bearer token that matches no token and a login refused before any credential
// could be checked cost an attacker nothing but a request, yet each would be a durable log entry
// that can never be deleted: without a bound, anyone who can reach the port could grow the log,
// and load its disk, at the rate of the group commit. So per client address and kind, the first
// `per_minute` rejections of a minute are recorded as usual; the rest of that minute are only
// counted, and the count is recorded once the minute is over (on the address's next rejection,
// or by Flush from housekeeping). Every attempt is still in the log, as a number if not as an
// entry.
//
// Addresses are the IP without the port ("192.0.2.7", "[2001:db8::1]"). At most kMaxAddresses
// are tracked at once; beyond that, new addresses share one bucket ("*"), so that many addresses
// cannot grow the table (they share one budget instead). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace signet::service {

class RejectionThrottle {
 public:
  static constexpr size_t kMaxAddresses = 65536;
  static constexpr std::chrono::seconds kWindow{60};

  // Rejections counted but not recorded in one address's ended minute.
  struct Held {
    std::string kind;
    std::string address;
    int64_t count = 0;
    TimePoint first;  // the first and last rejection held
    TimePoint last;
  };
  struct Decision {
    bool record = true;          // record this rejection as an entry
    std::vector<Held> released;  // held counts of ended minutes to record with it (0 or 1)
  };

  // `per_minute` < 1 records everything.
  explicit RejectionThrottle(int64_t per_minute) : per_minute_(per_minute) {}

  // The IP part of a transport's "address:port" (the whole text if it has no port).
  static std::string AddressOf(std::string_view client_address);

  // One rejection of `kind` from `client_address` at `now`.
  Decision Note(std::string_view kind, std::string_view client_address, TimePoint now);

  // The held counts of every minute that has ended by `now`, and those given back by Requeue;
  // those buckets are forgotten.
  std::vector<Held> Flush(TimePoint now);

  // Gives back counts that could not be logged, for the next Flush (at most kMaxAddresses are
  // kept; beyond that they are added to the last one).
  void Requeue(std::vector<Held> held);

 private:
  struct Bucket {
    TimePoint start;
    int64_t recorded = 0;
    Held held;
  };
  const int64_t per_minute_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Bucket> buckets_;  // (kind, address); guarded
  std::vector<Held> requeued_;                                     // guarded by mu_
};

}  // namespace signet::service
