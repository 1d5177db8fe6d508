// RejectionThrottle: how many anonymous rejections from one client address the audit log records
// one by one. A bearer token that is refused and a login refused before any credential could be
// checked cost an attacker nothing but a request, yet each would be a durable log entry that can
// never be deleted: without a bound, anyone who can reach the port could grow the log, and load
// its disk, at the rate of the group commit. So per client address and kind, the first
// `per_minute` rejections of a minute are recorded as usual, and across all addresses at most
// `global_per_minute`; the rest are only counted (by reason), and the count is recorded once the
// minute is over (on the address's next rejection, or by Flush from housekeeping). Every attempt
// is still in the log, as a number if not as an entry.
//
// All reasons of a kind share the address's budget (an unknown token and a stolen one are held
// alike, so the time an answer takes does not tell them apart once an address is over budget).
// Addresses are the IP without the port: "192.0.2.7", and for IPv6 the /64 ("[2001:db8:1:2::]/64"),
// since one host holds a whole /64. At most kMaxAddresses are tracked at once; beyond that, and
// once the global budget is spent, rejections are held in one shared bucket ("*"). Thread-safe.
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
  // The shared budget, as a multiple of the per-address one.
  static constexpr int64_t kGlobalFactor = 16;

  // Rejections counted but not recorded in one address's ended minute.
  struct Held {
    std::string kind;
    std::string address;
    int64_t count = 0;
    std::map<std::string, int64_t> reasons;  // count by reason
    TimePoint first;  // the first and last rejection held
    TimePoint last;
  };
  struct Decision {
    bool record = true;          // record this rejection as an entry
    std::vector<Held> released;  // held counts of ended minutes to record first (0 or 1)
  };

  // `per_minute` < 1 records everything; the global budget is kGlobalFactor * per_minute.
  explicit RejectionThrottle(int64_t per_minute)
      : per_minute_(per_minute), global_per_minute_(per_minute * kGlobalFactor) {}

  // The address part of a transport's "address:port": the IPv4 address, or the IPv6 /64 (the
  // whole text if it is neither).
  static std::string AddressOf(std::string_view client_address);

  // One rejection of `kind` for `reason` from `client_address` at `now`.
  Decision Note(std::string_view kind, std::string_view reason, std::string_view client_address,
                TimePoint now);

  // The held counts of every minute that has ended by `now`, and those given back by Requeue;
  // those buckets are forgotten.
  std::vector<Held> Flush(TimePoint now);

  // Gives back counts that could not be logged, for the next Flush. Counts of the same kind and
  // address are merged; beyond kMaxAddresses they go to that kind's "*".
  void Requeue(std::vector<Held> held);

 private:
  struct Bucket {
    TimePoint start;
    int64_t recorded = 0;
    Held held;
  };
  static void Hold(Held& held, std::string_view reason, TimePoint now);
  static void Merge(Held& into, Held from);

  const int64_t per_minute_;
  const int64_t global_per_minute_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Bucket> buckets_;  // (kind, address); guarded
  TimePoint global_start_{};                                       // guarded by mu_
  int64_t global_recorded_ = 0;                                    // guarded by mu_
  std::map<std::pair<std::string, std::string>, Held> requeued_;   // guarded by mu_
};

}  // namespace signet::service
