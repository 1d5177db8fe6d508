// `signet serve`: the composition root of the service (DESIGN.md §2). Opens the data folder
// (running `signet init` first if it is not initialised), builds the HSM, store, sealer, account,
// key and signing services and the audit sink, bootstraps the first admin, and runs the HTTPS
// server until SIGTERM or SIGINT. Not thread-safe; one per process.
#pragma once

#include <memory>

#include "cli/command.h"

namespace signet::cli {

std::unique_ptr<Command> MakeServeCommand();

}  // namespace signet::cli
