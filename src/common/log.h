// The operational log: one line for each thing an operator must see and no client may (a server
// fault behind a "request id" answer, a failing health check). It goes to standard error, which
// systemd's journal or a container runtime collects. It is not the audit log: nothing here is
// evidence, and no secret may be passed to it.
//
// A line reads "2026-11-24T05:30:00Z signet error: <component>: <message>". Control characters in
// the message (newlines included) are escaped and it is cut at 4096 bytes (OneLineSafe, text.h), so
// that no message (one from an HSM, or one that quotes a request) can forge a second line.
// Thread-safe; each line is one write(2).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace signet {

enum class LogLevel { kWarning, kError };

void LogLine(LogLevel level, std::string_view component, std::string_view message);

// Where lines go; the default writes them to standard error. For tests, which capture the lines a
// call wrote: returns the sink it replaces. Passing an empty function restores the default.
using LogSink = std::function<void(std::string_view line)>;
LogSink SetLogSink(LogSink sink);

}  // namespace signet
