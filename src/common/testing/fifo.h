// Test helper: does a read of a FIFO that nobody writes to hang? A reader that opens a FIFO
// without O_NONBLOCK waits in open() for a writer, forever; signet's readers of files that must
// be regular (secrets, the session, trusted configuration) refuse a FIFO at once instead.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace signet::testing {

// Makes a FIFO at `path` and runs `read` on it. If `read` has not returned after `patience`, a
// writer opens the FIFO (which lets a reader blocked in open() go) and the answer is true: the
// read would have hung. False if `read` returned by itself (or the FIFO cannot be made: then
// `made` is false).
template <typename Read>
bool ReadOfFifoHangs(const std::string& path, Read read, bool* made,
                     std::chrono::milliseconds patience = std::chrono::milliseconds(3000)) {
  *made = ::mkfifo(path.c_str(), 0600) == 0;
  if (!*made) return false;
  std::atomic<bool> done{false};
  std::atomic<bool> released{false};
  std::thread writer([&] {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (!done.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (done.load()) return;
    // Succeeds only while a reader has the FIFO open or is waiting in open() for a writer.
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      released = true;
      ::close(fd);
    }
  });
  read();
  done = true;
  writer.join();
  return released.load();
}

}  // namespace signet::testing
