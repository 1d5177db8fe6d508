// The `signet` subcommands that exist only against a signet server: login, logout, password,
// whoami, account management, and key grants and policies. Each is one small class that reads
// its inputs (prompt.h), calls the management API (docs/api.md) through the saved session
// (remote_context.h) and prints text or, with --json, JSON. The key lifecycle commands shared
// with the local CLI are in commands.cc and reach the server through key_backend.h.
#pragma once

#include <vector>

#include "cli/commands.h"

namespace signet::cli {

// All remote-only commands, in the order `signet --help` shows them.
std::vector<NamedCommand> RemoteCommands();

}  // namespace signet::cli
