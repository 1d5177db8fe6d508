// Unit tests for WorkerPool (worker_pool.h): admission limits and draining on shutdown.

#include "server/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace signet::server {
namespace {

// Blocks jobs until released.
class Gate {
 public:
  void Wait() { released_.wait(false); }
  void Release() {
    released_ = true;
    released_.notify_all();
  }

 private:
  std::atomic<bool> released_{false};
};

void WaitUntil(const std::function<bool()>& condition) {
  for (int i = 0; i < 2000 && !condition(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(WorkerPoolTest, RunsJobs) {
  WorkerPool pool(2, 4);
  std::promise<int> result;
  ASSERT_TRUE(pool.TrySubmit([&result] { result.set_value(42); }));
  EXPECT_EQ(result.get_future().get(), 42);
}

TEST(WorkerPoolTest, RefusesWhenThreadsAndQueueAreFull) {
  WorkerPool pool(1, 1);
  Gate gate;
  std::atomic<int> started{0};
  ASSERT_TRUE(pool.TrySubmit([&] {
    ++started;
    gate.Wait();
  }));
  WaitUntil([&] { return started == 1; });
  ASSERT_TRUE(pool.TrySubmit([&] { ++started; }));  // waits in the queue
  EXPECT_FALSE(pool.TrySubmit([&] { ++started; }));
  EXPECT_EQ(pool.in_flight(), 2u);
  gate.Release();
  WaitUntil([&] { return pool.in_flight() == 0; });
  EXPECT_EQ(started, 2);
  EXPECT_TRUE(pool.TrySubmit([] {}));
}

TEST(WorkerPoolTest, ZeroQueueAcceptsOnlyWhileAThreadIsIdle) {
  WorkerPool pool(1, 0);
  Gate gate;
  ASSERT_TRUE(pool.TrySubmit([&] { gate.Wait(); }));
  EXPECT_FALSE(pool.TrySubmit([] {}));
  gate.Release();
  WaitUntil([&] { return pool.in_flight() == 0; });
  EXPECT_TRUE(pool.TrySubmit([] {}));
}

TEST(WorkerPoolTest, ShutdownRunsAcceptedJobsThenRefuses) {
  std::atomic<int> ran{0};
  WorkerPool pool(1, 10);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.TrySubmit([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ++ran;
    }));
  }
  pool.Shutdown();
  EXPECT_EQ(ran, 5);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));
  pool.Shutdown();  // idempotent
}

TEST(WorkerPoolTest, SurvivesAThrowingJob) {
  WorkerPool pool(1, 2);
  ASSERT_TRUE(pool.TrySubmit([] { throw std::runtime_error("boom"); }));
  std::promise<void> done;
  ASSERT_TRUE(pool.TrySubmit([&] { done.set_value(); }));
  EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

}  // namespace
}  // namespace signet::server
