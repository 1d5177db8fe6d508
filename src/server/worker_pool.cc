// WorkerPool (worker_pool.h).

#include "server/worker_pool.h"

#include <algorithm>
#include <utility>

namespace signet::server {

WorkerPool::WorkerPool(size_t threads, size_t queue_capacity)
    : thread_count_(std::max<size_t>(threads, 1)), queue_capacity_(queue_capacity) {
  threads_.reserve(thread_count_);
  try {
    for (size_t i = 0; i < thread_count_; ++i) threads_.emplace_back([this] { Run(); });
  } catch (...) {
    Shutdown();
    throw;
  }
}

WorkerPool::~WorkerPool() { Shutdown(); }

bool WorkerPool::TrySubmit(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (shutting_down_ || queue_.size() + running_ >= thread_count_ + queue_capacity_) {
      return false;
    }
    queue_.push_back(std::move(job));
  }
  work_ready_.notify_one();
  return true;
}

size_t WorkerPool::in_flight() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

void WorkerPool::Shutdown() {
  std::lock_guard join_lock(join_mu_);
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::Run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      work_ready_.wait(lock, [this] { return shutting_down_ || !queue_.empty(); });
      if (queue_.empty()) return;  // shutting down and drained
      job = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    try {
      job();
    } catch (...) {
      // Documented: jobs must not throw. Swallowed so the worker survives.
    }
    job = nullptr;  // destroy captures outside the lock but before counting the job done
    std::lock_guard lock(mu_);
    --running_;
  }
}

}  // namespace signet::server
