// audit/sequencer: gives log entries their durable indices, grouping concurrent appends into one
// store transaction (group commit; DESIGN.md §3 "durability", issue 4 "Sequencer").
//
// Append returns only once the entries are durable at their indices: that is what lets the
// service release a signature after logging it (DESIGN.md §3 "audit invariant"). A durable commit
// costs a disk flush, and the flush costs the same for one entry as for a thousand, so appends
// that arrive while a commit is under way wait and go together into the next one. With 64
// concurrent appenders a commit carries up to 64 requests for the price of one flush.
//
// Guarantees:
//   - The entries of one Append get consecutive indices, all or none (Store::AppendLogEntries).
//   - Requests are committed in the order they arrived at the sequencer (FIFO), so one thread's
//     successive Appends get increasing indices.
//   - A request never fails because of another request in its group: when a grouped transaction
//     fails, the requests are retried without the one whose render failed, or each alone, so only
//     the bad one gets an error. An error that is about the store itself (Unavailable,
//     ResourceExhausted, DataLoss, PermissionDenied, Internal: the database is locked, full,
//     damaged or unwritable) is returned to every request of the group, since retrying each alone
//     would only repeat it.
//   - No entry is dropped silently: every Append either returns the index of its durable entries
//     or an error, after which none of its entries is in the log (Store::AppendLogEntries is all
//     or nothing).
//
// Threads: Append and stats() may be called from any number of threads at once. Call
// SetOnAppended before the first Append. The store must outlive the Sequencer; the sequencer is
// its only writer of log entries in this process (other processes may append too: the store
// assigns indices inside its transaction). Entries' render functions and apply changes
// (store::LogEntryAppend) run on whichever caller thread commits the group, with the store's
// write lock held; they must not call Append. An apply calls back into the store on that thread,
// inside the group's transaction, so it must use the store the Sequencer was given.
//
// Shutdown: once the destructor has started, Append returns Unavailable; requests already waiting
// are committed first, and the destructor returns once every Append in progress has its result
// (a caller that has its result no longer touches the sequencer, only its own request, which it
// shares with the leader). Calling Append after the destructor has returned is, as for any object,
// undefined.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/result.h"
#include "store/store.h"

namespace signet::audit {

struct SequencerOptions {
  // The most entries one store transaction carries when grouping requests. A single request with
  // more entries is still committed, alone, since its entries may not be split.
  size_t max_batch_entries = 1024;
};

// Counters since construction; a plain value.
struct SequencerStats {
  int64_t requests = 0;         // Append calls that returned success
  int64_t failed_requests = 0;  // Append calls that returned an error (shutdown included)
  int64_t entries = 0;          // entries made durable
  int64_t batches = 0;          // store transactions that committed (each one disk flush)
  int64_t largest_batch = 0;    // most entries committed in one transaction
  int64_t retried_groups = 0;   // grouped transactions that failed and were retried in parts
};

class Sequencer {
 public:
  explicit Sequencer(store::Store& store, SequencerOptions options = {});
  // Waits for queued and running Appends; see "Shutdown" above.
  ~Sequencer();
  // Deleted: waiting callers point into this object.
  Sequencer(const Sequencer&) = delete;
  Sequencer& operator=(const Sequencer&) = delete;

  // Appends `entries` at consecutive indices and returns the first, once they are durable.
  // Errors: InvalidArgument if `entries` is empty or an entry has no action or render function;
  // a render's own error (with context) if one of this request's renders fails, and
  // InvalidArgument if one renders an empty entry or one over store::kMaxLogEntrySize; the
  // store's error for a store failure; Unavailable once shutdown has begun. On error none of
  // `entries` is in the log. An entry's `apply` change commits in the same transaction as the
  // entry; its error (with context) fails only this request, like a render's. Since a group that
  // fails is retried, an apply (like a render) may run more than once, each time in a fresh
  // transaction after the last was rolled back.
  Result<int64_t> Append(std::vector<store::LogEntryAppend> entries);

  SequencerStats stats() const;

  // Called after each group commit with the log size just after it (the first index not yet
  // given), on the committing caller's thread, outside any lock of the sequencer. Keep it short
  // (the integrator uses it to wake up when enough entries have accumulated); it must not call
  // Append. Set it before the first Append; a later call replaces it for later commits.
  void SetOnAppended(std::function<void(int64_t new_size)> on_appended);

 private:
  struct Request;

  // Commits `group` (the requests at the front of queue_), setting each request's result and
  // counting batches, entries and retries into `delta`. Runs without mu_ held; only the leader
  // calls it, and there is one leader at a time. Returns the log size after the last successful
  // commit, or -1 if nothing was committed.
  int64_t CommitGroup(const std::vector<std::shared_ptr<Request>>& group, SequencerStats& delta);

  // Constant after construction.
  store::Store& store_;
  const SequencerOptions options_;

  mutable std::mutex mu_;
  // Guarded by mu_.
  // Requests waiting or being committed, in arrival order. The front one is the leader: it
  // commits the group at the front of the queue while the others wait on their own state word
  // (one each, so finishing a group wakes exactly its members and the next leader, and a woken
  // follower returns without taking mu_).
  std::deque<std::shared_ptr<Request>> queue_;
  bool closing_ = false;          // the destructor has started
  int callers_ = 0;  // threads inside Append and not yet answered; the destructor waits for 0
  std::condition_variable idle_;  // signalled when callers_ drops to 0 while closing_
  SequencerStats stats_;
  std::shared_ptr<const std::function<void(int64_t)>> on_appended_;
};

}  // namespace signet::audit
