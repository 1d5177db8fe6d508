// `signet serve`: the composition root of the service (DESIGN.md §2). Opens the data folder
// (running `signet init` first if it is not initialised), which gives the HSM, the store and the
// audit sink; opens the sealer; hands these ports to a ServiceStack (cli/service_stack.h), which
// builds the account, key and signing services, metrics, routes and the HTTPS server; bootstraps
// the first admin; and runs the stack until SIGTERM or SIGINT. Not thread-safe; one per process.
#pragma once

#include <memory>

#include "cli/command.h"

namespace signet::cli {

std::unique_ptr<Command> MakeServeCommand();

}  // namespace signet::cli
