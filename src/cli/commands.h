// The `signet` subcommands available without a server: data-folder setup, status, and the key
// lifecycle. The key commands act on a signet server instead when the rule in remote_context.h
// says so (key_backend.h); the remote-only commands are in remote_commands.h. Each is one small
// class; see command.h.
#pragma once

#include <memory>
#include <vector>

#include "cli/command.h"

namespace signet::cli {

struct NamedCommand {
  std::vector<std::string> path;  // e.g. {"key", "create"}
  std::string description;
  std::unique_ptr<Command> command;
};

// All local commands, in the order `signet --help` shows them.
std::vector<NamedCommand> LocalCommands();

}  // namespace signet::cli
