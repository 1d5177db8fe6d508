// The shape of a `signet` subcommand: it declares its options on the CLI11 sub-app it is given and
// runs, returning a Status that main() turns into one line on stderr and an exit code. Commands
// hold no business logic; they call service/ and print. Not thread-safe (a CLI is one thread).
#pragma once

#include <CLI/CLI.hpp>

#include "common/result.h"

namespace signet::cli {

// Options every command accepts. PINs never come from argv: only from --pin-file, SIGNET_PIN_FILE
// or SIGNET_PIN.
struct GlobalOptions {
  std::string data_dir;      // --data-dir, SIGNET_DATA_DIR, default ./signet-data
  std::string module_path;   // --module: overrides [hsm] module
  std::string token_label;   // --token-label: overrides [hsm] token_label
  std::string token_serial;  // --token-serial: overrides [hsm] token_serial
  std::string pin_file;      // --pin-file: overrides [hsm] pin_file
  bool json = false;         // --json: machine-readable output where it makes sense
  std::string server;        // --server: a signet server URL for remote commands (remote_context.h)
};

class Command {
 public:
  virtual ~Command() = default;
  // Adds this command's options to `app` (its own sub-app).
  virtual void Configure(CLI::App& app) = 0;
  virtual Status Run(const GlobalOptions& global) = 0;
};

}  // namespace signet::cli
