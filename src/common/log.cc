#include "common/log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include "common/clock.h"
#include "common/text.h"

namespace signet {
namespace {

std::mutex& SinkMutex() {
  static std::mutex mu;
  return mu;
}

LogSink& Sink() {
  static LogSink sink;  // empty: standard error; guarded by SinkMutex()
  return sink;
}

void WriteToStderr(std::string_view line) {
  while (!line.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere else to say it
    line.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void LogLine(LogLevel level, std::string_view component, std::string_view message) {
  std::string line = FormatRfc3339(std::chrono::system_clock::now());
  line += level == LogLevel::kError ? " signet error: " : " signet warning: ";
  line += OneLineSafe(component, 64);
  line += ": ";
  // Backslashes doubled first, so that text spelling "\x0a" cannot pass for an escaped newline.
  std::string doubled;
  doubled.reserve(message.size());
  for (char c : message) {
    if (c == '\\') doubled += '\\';
    doubled += c;
  }
  line += OneLineSafe(doubled);
  line += '\n';
  std::lock_guard lock(SinkMutex());
  if (Sink()) {
    Sink()(line);
  } else {
    WriteToStderr(line);
  }
}

LogSink SetLogSink(LogSink sink) {
  std::lock_guard lock(SinkMutex());
  LogSink previous = std::move(Sink());
  Sink() = std::move(sink);
  return previous;
}

}  // namespace signet
