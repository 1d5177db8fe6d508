// WorkerPool: a fixed set of threads running jobs from a bounded queue, so that blocking work (HSM
// signing, database calls) never runs on an I/O thread and never piles up without limit.
//
// Admission is all-or-nothing and immediate: TrySubmit never blocks. A job is accepted while fewer
// than `threads + queue_capacity` jobs are queued or running; otherwise the caller gets false and
// answers 503 + Retry-After (back-pressure). With queue_capacity 0 a job is accepted only when a
// thread is idle.
//
// Threads: TrySubmit, in_flight and Shutdown may be called from any thread. Jobs run on the pool's
// threads in submission order (FIFO); a job must not throw (an escaping exception is swallowed so
// one bad job cannot kill a worker) and must not call Shutdown on its own pool.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace signet::server {

class WorkerPool {
 public:
  // Starts `threads` (at least 1) threads. May throw std::system_error if the OS refuses a thread;
  // Server::Start converts that into an Error.
  WorkerPool(size_t threads, size_t queue_capacity);
  // Same as Shutdown().
  ~WorkerPool();
  // Owns threads that capture `this`; copying or moving would leave them dangling.
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `job`; false (and `job` is dropped unrun) when the pool is full or shut down.
  [[nodiscard]] bool TrySubmit(std::function<void()> job);

  // Jobs queued or running right now.
  size_t in_flight() const;

  // Stops admitting jobs, lets every already-accepted job run to completion, then joins the
  // threads. Idempotent.
  void Shutdown();

 private:
  void Run();

  // Constant after construction.
  const size_t thread_count_;
  const size_t queue_capacity_;

  mutable std::mutex mu_;
  std::condition_variable work_ready_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t running_ = 0;                       // guarded by mu_
  bool shutting_down_ = false;               // guarded by mu_

  std::mutex join_mu_;                // serialises Shutdown callers
  std::vector<std::thread> threads_;  // guarded by join_mu_ after construction
};

}  // namespace signet::server
