// The `signet audit` subcommands (issue 4; docs/audit.md): verify a log offline or over HTTPS,
// export it as JSON lines that verify offline, follow it, and print its verifier key.
//
//   signet audit verify (--server URL | --data-dir DIR | --export FILE)
//                       [--trusted-checkpoint FILE] [--key VERIFIER_KEY]...
//   signet audit export (--data-dir DIR | --server URL) [--out FILE]
//   signet audit tail   [--data-dir DIR | --server URL] [--from I] [--interval S] [--no-follow]
//   signet audit key    [--data-dir DIR]
//
// A data folder is read through its SQLite database only (no HSM, no PIN): the log is public
// evidence, and an auditor may hold a copy of the database without the token. A server is read
// through /log/ (C2SP tlog-tiles) and /api/v1/log/entries with the token of `signet login` when
// the session belongs to that server (an auditor or admin account), or without one when the
// server publishes its log. `verify` exits 0 when the log verifies, 8 (data loss) naming the first
// bad index when it does not, and with the usual codes when it cannot decide (exit_codes.h).
//
// One small class per subcommand (command.h); not thread-safe.
#pragma once

#include <vector>

#include "cli/commands.h"

namespace signet::cli {

// The audit commands, in the order `signet audit --help` shows them.
std::vector<NamedCommand> AuditCommands();

}  // namespace signet::cli
