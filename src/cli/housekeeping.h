// Housekeeping: a background thread of `signet serve` that periodically deletes what has expired
// from the store (spent or timed-out activations, expired bearer tokens), so those tables do not
// grow without bound. Owned by ServiceStack; nothing else depends on it running (the service never
// accepts an expired SAD or token whether or not it was deleted).
//
// Each pass runs every task once with the clock's current time as the cutoff and counts into
// server::Metrics:
//   signet_housekeeping_runs_total                 passes completed
//   signet_housekeeping_deleted_total{kind}        rows deleted, by task kind (for
//                                                  "held_rejections": count entries logged)
//   signet_housekeeping_errors_total{kind}         tasks that failed
// A failing task is never fatal: it is counted, and reported through the reporter (the operational
// log, common/log.h, by default) the first time each kind fails, so a broken database does not
// flood the log every minute; the next pass simply tries again.
//
// Threads: Start, Stop and the destructor may be called from any thread, but not concurrently with
// each other for the same object; RequestStop and RunOnce may be called from any thread at any
// time (passes are serialised). The worker waits on a condition variable, so it ends as soon as a
// running pass does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "server/metrics.h"
#include "service/audit_sink.h"
#include "store/store.h"

namespace signet::cli {

// One kind of cleanup: `run(now)` deletes what expired before `now` and returns how many rows.
struct HousekeepingTask {
  std::string kind;  // the metrics label, e.g. "activations"; from code, never from input
  std::function<Result<int64_t>(TimePoint now)> run;
};

// The store's cleanups: "activations" (Store::DeleteExpiredActivations) and "bearer_tokens"
// (Store::DeleteExpiredBearerTokens). `store` must outlive the tasks.
std::vector<HousekeepingTask> StoreHousekeepingTasks(store::Store& store);

// "clock_steps": notices the wall clock being stepped (by an operator, or NTP correcting a large
// offset) between two passes, which shifts every time the service relies on (SAD and token
// expiry, TOTP steps, lockouts, the log's entry times), and records it as a `clock_step` entry
// (system actor) naming how far it moved: "step_ms" (wall time passed minus real time passed;
// negative when set back), "expected" and "now". Steps under kClockStepThreshold (NTP slews
// the clock by at most 0.5 ms per second) are not steps. Returns the number of entries
// recorded. The wall time is `clock`'s; `real_time` gives real elapsed time (BootTime:
// CLOCK_BOOTTIME, which, unlike the monotonic clock, also counts a suspended VM's sleep, during
// which the wall clock runs on too; injectable for tests). Both outlive the task.
inline constexpr std::chrono::milliseconds kClockStepThreshold{1000};
std::chrono::nanoseconds BootTime();
HousekeepingTask ClockStepTask(service::AuditSink& audit, const Clock& clock,
                               std::function<std::chrono::nanoseconds()> real_time = BootTime);

struct HousekeepingOptions {
  bool enabled = true;
  // Time between passes (real time, not the injected clock, which only supplies cutoffs). The
  // first pass runs at Start.
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
};

class Housekeeper {
 public:
  // Receives one line of text (no trailing newline) to show to the operator.
  using Reporter = std::function<void(std::string_view line)>;

  // `clock` and `metrics` must outlive the housekeeper. An empty `report` writes to the
  // operational log.
  Housekeeper(std::vector<HousekeepingTask> tasks, const Clock& clock, server::Metrics& metrics,
              std::chrono::milliseconds interval, Reporter report = {});
  // Stops and joins the thread.
  ~Housekeeper();
  // Owns a thread that points at it.
  Housekeeper(const Housekeeper&) = delete;
  Housekeeper& operator=(const Housekeeper&) = delete;

  // Starts the thread: a pass now, then one every interval until Stop. FailedPrecondition if
  // already started (a stopped housekeeper is not restarted).
  Status Start();

  // Tells the thread to end after the pass in progress (if any) and returns at once. Idempotent.
  void RequestStop();

  // RequestStop, then joins the thread. Idempotent; does nothing more if never started.
  void Stop();

  // One pass on the calling thread (tests; also what the thread runs).
  void RunOnce();

 private:
  void Loop();

  // Constant after construction.
  const std::vector<HousekeepingTask> tasks_;
  const Clock& clock_;
  server::Metrics& metrics_;
  const std::chrono::milliseconds interval_;
  const Reporter report_;

  std::mutex run_mu_;               // serialises passes
  std::set<std::string> reported_;  // kinds whose failure was reported; guarded by run_mu_

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // guarded by mu_
  std::thread thread_;     // started by Start, joined by Stop; touched only by them
};

}  // namespace signet::cli
