#include "audit/sequencer.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace signet::audit {

// Group commit by leader and followers (as LevelDB's DBImpl::Write) rather than a committer
// thread: each caller queues its request; the caller at the front of the queue becomes the
// leader, takes every request queued behind it (up to max_batch_entries), commits them in one
// store transaction without holding mu_, then hands each follower its result and wakes the next
// front. While a leader waits for the disk, new requests pile up and become the next group, so the
// group size adapts to the load by itself: one appender alone pays no extra hand-off (it is its
// own leader and commits at once, no thread switch), and 64 appenders share one flush. A committer
// thread would add two thread switches to every append, which on a two-core machine costs about
// what the commit itself costs when the disk is fast, and it would need its own start and stop.

struct Sequencer::Request {
  explicit Request(std::vector<store::LogEntryAppend> e) : entries(std::move(e)) {}
  std::vector<store::LogEntryAppend> entries;  // moved into the batch by the leader
  Result<int64_t> result = InternalError("audit log request was not committed");
  // kWaiting until the leader of its group sets kDone (result is final, written before) or the
  // previous leader sets kLeading (this request is now at the front of the queue). The caller
  // waits on it without mu_: a finished follower never touches the sequencer again, so waking a
  // group costs one wake-up per follower and no convoy on mu_. Shared with the leader, which
  // may still be notifying after the follower has returned.
  std::atomic<int> state{kWaiting};
  static constexpr int kWaiting = 0;
  static constexpr int kLeading = 1;
  static constexpr int kDone = 2;
};

namespace {

// Errors about the store itself rather than about one request's entries: retrying the requests
// one by one would only meet them again (and a lock timeout would then cost its full wait once
// per request), so every request of the group gets the error.
bool IsStoreFailure(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kNotFound:
    case ErrorCode::kFailedPrecondition:
      return false;
    default:
      return true;
  }
}

// Which request of a batch made the store's transaction fail, recorded by the render wrapper,
// since the store's error alone only names a position in the combined batch.
struct Blame {
  const void* request = nullptr;
  std::optional<Error> error;
};

// The sequencer whose group this thread is committing, if any: an Append from inside a render or
// a change would queue behind the group that is waiting for it, and hang the log.
thread_local const void* committing_on_this_thread = nullptr;

std::string Describe(size_t k, size_t n, const std::string& action) {
  std::string out = "log entry ";
  if (n > 1) out += std::to_string(k + 1) + " of " + std::to_string(n) + " ";
  return out + "(action '" + action + "')";
}

}  // namespace

Sequencer::Sequencer(store::Store& store, SequencerOptions options)
    : store_(store), options_(options) {}

Sequencer::~Sequencer() {
  std::unique_lock lock(mu_);
  closing_ = true;
  // Queued requests still have their threads, which lead in turn until the queue is empty.
  idle_.wait(lock, [this] { return callers_ == 0; });
}

void Sequencer::SetOnAppended(std::function<void(int64_t new_size)> on_appended) {
  auto shared = on_appended
                    ? std::make_shared<const std::function<void(int64_t)>>(std::move(on_appended))
                    : nullptr;
  std::lock_guard lock(mu_);
  on_appended_ = std::move(shared);
}

SequencerStats Sequencer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<int64_t> Sequencer::Append(std::vector<store::LogEntryAppend> entries) {
  // Shape errors are refused here, before the request can join (and fail) a group.
  std::optional<Error> invalid;
  if (entries.empty()) invalid = InvalidArgument("cannot append to the audit log: no entries");
  for (size_t k = 0; k < entries.size() && !invalid; ++k) {
    if (entries[k].action.empty()) {
      invalid = InvalidArgument(Describe(k, entries.size(), "") + " has no action name");
    } else if (!entries[k].render) {
      invalid = InvalidArgument(Describe(k, entries.size(), entries[k].action) +
                                " has no render function");
    }
  }
  if (!invalid && committing_on_this_thread == this) {
    invalid = FailedPrecondition(
        "cannot append to the audit log from inside an entry's render or change");
  }
  auto request = std::make_shared<Request>(std::move(entries));

  std::unique_lock lock(mu_);
  if (invalid || closing_) {
    ++stats_.failed_requests;
    if (invalid) return *invalid;
    return Unavailable("the audit log is shutting down; the entry was not appended");
  }
  ++callers_;
  queue_.push_back(request);
  // Alone in the queue: nobody is leading, so this caller leads at once (no thread switch).
  if (queue_.size() == 1) request->state.store(Request::kLeading, std::memory_order_relaxed);
  lock.unlock();

  int state = request->state.load(std::memory_order_acquire);
  while (state == Request::kWaiting) {
    request->state.wait(Request::kWaiting, std::memory_order_acquire);
    state = request->state.load(std::memory_order_acquire);
  }
  // A follower: the leader wrote the result, counted it and took it out of callers_.
  if (state == Request::kDone) return std::move(request->result);

  // This thread leads: the group is the front of the queue, in arrival order.
  lock.lock();
  std::vector<std::shared_ptr<Request>> group;
  size_t group_entries = 0;
  for (const std::shared_ptr<Request>& r : queue_) {
    if (!group.empty() && group_entries + r->entries.size() > options_.max_batch_entries) break;
    group.push_back(r);
    group_entries += r->entries.size();
  }
  lock.unlock();
  SequencerStats delta;
  int64_t new_size = -1;
  try {
    committing_on_this_thread = this;
    new_size = CommitGroup(group, delta);
    committing_on_this_thread = nullptr;
  } catch (...) {
    committing_on_this_thread = nullptr;
    // Whatever escaped the store (bad_alloc, say): the requests it did not commit keep their
    // "not committed" result. The hand-off below must still run, or the followers would wait,
    // and the sequencer's shutdown with them, forever.
  }
  lock.lock();

  stats_.batches += delta.batches;
  stats_.entries += delta.entries;
  stats_.largest_batch = std::max(stats_.largest_batch, delta.largest_batch);
  stats_.retried_groups += delta.retried_groups;
  for (size_t i = 0; i < group.size(); ++i) queue_.pop_front();
  for (const std::shared_ptr<Request>& r : group) {
    ++(r->result.ok() ? stats_.requests : stats_.failed_requests);
  }
  callers_ -= static_cast<int>(group.size()) - 1;  // the followers; this thread below
  std::shared_ptr<Request> next = queue_.empty() ? nullptr : queue_.front();
  std::shared_ptr<const std::function<void(int64_t)>> on_appended = on_appended_;
  lock.unlock();

  // Outside mu_: `group` and `next` keep the requests alive while they are woken.
  for (const std::shared_ptr<Request>& r : group) {
    if (r == request) continue;
    r->state.store(Request::kDone, std::memory_order_release);
    r->state.notify_one();
  }
  if (next != nullptr) {
    next->state.store(Request::kLeading, std::memory_order_release);
    next->state.notify_one();
  }
  if (new_size >= 0 && on_appended != nullptr) (*on_appended)(new_size);

  Result<int64_t> result = std::move(request->result);
  lock.lock();
  if (--callers_ == 0 && closing_) idle_.notify_all();
  return result;
}

int64_t Sequencer::CommitGroup(const std::vector<std::shared_ptr<Request>>& group,
                               SequencerStats& delta) {
  // One part per request, in order, and the combined batch the store gets. Each entry's render is
  // wrapped so that a failure names the request (and the entry within it) that caused it, and so
  // that an empty or oversized entry is charged to its request before the store sees it.
  struct Part {
    Request* request;
    size_t count;
  };
  std::vector<Part> parts;
  std::vector<store::LogEntryAppend> batch;
  Blame blame;
  for (const std::shared_ptr<Request>& shared : group) {
    Request* r = shared.get();
    parts.push_back({r, r->entries.size()});
    const size_t n = r->entries.size();
    for (size_t k = 0; k < n; ++k) {
      store::LogEntryAppend& e = r->entries[k];
      auto render = [&blame, r, k, n, action = e.action,
                     inner = std::move(e.render)](int64_t index) -> Result<std::string> {
        // A render is the caller's code (JSON serialisation, say); an exception from it must not
        // unwind through the group and leave the followers waiting forever.
        Result<std::string> out = InternalError("no render result");
        try {
          out = inner(index);
        } catch (const std::exception& ex) {
          out = InternalError(std::string("the entry's render function threw: ") + ex.what());
        } catch (...) {
          out = InternalError("the entry's render function threw something not an exception");
        }
        if (out.ok() && !out->empty() && out->size() <= store::kMaxLogEntrySize) return out;
        const std::string what = Describe(k, n, action) + " at index " + std::to_string(index);
        Error error = out.ok() ? InvalidArgument(what + " renders " + std::to_string(out->size()) +
                                                 " bytes; an entry has 1.." +
                                                 std::to_string(store::kMaxLogEntrySize))
                               : out.error().WithContext("cannot render " + what);
        blame.request = r;
        blame.error = error;
        return error;
      };
      // The change an entry carries fails only its own request, as a failing render does.
      store::StoreChange apply;
      if (e.apply) {
        apply = [&blame, r, k, n, action = e.action,
                 inner = std::move(e.apply)](store::Store& store) -> Status {
          Status applied = InternalError("no change result");
          try {
            applied = inner(store);
          } catch (const std::exception& ex) {
            applied = InternalError(std::string("the change threw: ") + ex.what());
          } catch (...) {
            applied = InternalError("the change threw something not an exception");
          }
          if (applied.ok()) return applied;
          Error error = applied.error().WithContext("cannot make the change recorded by " +
                                                    Describe(k, n, action));
          blame.request = r;
          blame.error = error;
          return error;
        };
      }
      batch.push_back({e.time, std::move(e.action), std::move(e.key_id), std::move(e.account_id),
                       std::move(render), std::move(apply)});
    }
  }

  int64_t new_size = -1;
  auto committed = [&](Part part, int64_t first) {
    part.request->result = first;
    const auto count = static_cast<int64_t>(part.count);
    new_size = std::max(new_size, first + count);
    delta.entries += count;
  };
  auto counted_batch = [&](size_t entries) {
    ++delta.batches;
    delta.largest_batch = std::max(delta.largest_batch, static_cast<int64_t>(entries));
  };

  while (!parts.empty()) {
    blame = {};
    Result<int64_t> first = store_.AppendLogEntries(batch);
    if (first.ok()) {
      counted_batch(batch.size());
      int64_t next = *first;
      for (const Part& p : parts) {
        committed(p, next);
        next += static_cast<int64_t>(p.count);
      }
      return new_size;
    }
    if (blame.request != nullptr) {
      // One request's render failed: it alone gets the error; the rest go again as one group.
      ++delta.retried_groups;
      std::vector<Part> kept;
      std::vector<store::LogEntryAppend> rebuilt;
      size_t offset = 0;
      for (const Part& p : parts) {
        if (p.request == blame.request) {
          p.request->result = *blame.error;
        } else {
          kept.push_back(p);
          for (size_t i = 0; i < p.count; ++i) rebuilt.push_back(std::move(batch[offset + i]));
        }
        offset += p.count;
      }
      parts = std::move(kept);
      batch = std::move(rebuilt);
      continue;
    }
    if (IsStoreFailure(first.error()) || parts.size() == 1) {
      for (const Part& p : parts) p.request->result = first.error();
      return new_size;
    }
    // The store refused the group for a reason that may lie in one request's entries but that no
    // render reported (a database constraint, say): commit each request alone, so that only the
    // one it concerns fails.
    ++delta.retried_groups;
    size_t offset = 0;
    for (const Part& p : parts) {
      blame = {};
      std::span<const store::LogEntryAppend> alone(batch.data() + offset, p.count);
      offset += p.count;
      Result<int64_t> one = store_.AppendLogEntries(alone);
      if (one.ok()) {
        counted_batch(p.count);
        committed(p, *one);
      } else {
        p.request->result = blame.error ? *blame.error : one.error();
      }
    }
    return new_size;
  }
  return new_size;
}

}  // namespace signet::audit
