// signet: the command-line entry point. Parses arguments with CLI11, runs exactly one subcommand,
// and turns its Status into one line on stderr ("signet: <message>") and an exit code.

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/remote_commands.h"
#include "common/text.h"

namespace signet::cli {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 2;
    case ErrorCode::kNotFound:
      return 3;
    case ErrorCode::kAlreadyExists:
      return 4;
    case ErrorCode::kPermissionDenied:
    case ErrorCode::kUnauthenticated:
      return 5;
    case ErrorCode::kFailedPrecondition:
      return 6;
    case ErrorCode::kUnavailable:
    case ErrorCode::kResourceExhausted:
      return 7;
    case ErrorCode::kDataLoss:
      return 8;
    case ErrorCode::kInternal:
      return 1;
  }
  return 1;
}

namespace {

int Main(int argc, char** argv) {
  CLI::App app{"signet: a code-signing service whose keys never leave the HSM"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  app.set_version_flag("--version", "signet " SIGNET_VERSION);

  GlobalOptions global;
  app.add_option("--data-dir", global.data_dir,
                 "Data folder (default: $SIGNET_DATA_DIR or ./signet-data)");
  app.add_option("--module", global.module_path,
                 "PKCS#11 module to load, an absolute path (overrides signet.toml)")
      ->check(CLI::Validator(
          [](std::string& path) {
            // As hsm.module in signet.toml: no lookup from the current folder or library path.
            return path.empty() || path.front() == '/' ? std::string()
                                                       : std::string(
                                                             "must be an absolute path, e.g. "
                                                             "/usr/lib/softhsm/libsofthsm2.so");
          },
          "PATH"));
  app.add_option("--token-label", global.token_label, "Token to use, by label");
  app.add_option("--token-serial", global.token_serial, "Token to use, by serial number")
      ->excludes("--token-label");
  app.add_option("--pin-file", global.pin_file,
                 "File holding the token user PIN (or set SIGNET_PIN_FILE / SIGNET_PIN)");
  app.add_flag("--json", global.json, "Machine-readable JSON output");
  app.add_option("--server", global.server,
                 "signet server URL for 'login' and remote 'key' commands (or SIGNET_SERVER)");
  app.footer(
      "Local or remote: 'signet key ...' acts on a signet server when --server URL or "
      "SIGNET_SERVER is given, or when neither --data-dir nor SIGNET_DATA_DIR is given and "
      "'signet login' has saved a session ($XDG_CONFIG_HOME/signet/session.json, default "
      "~/.config/signet/); otherwise on the local data folder. 'account', 'key grant|revoke|"
      "grants|policy', 'password' and 'whoami' always use the session.\n"
      "Secrets never come from the command line: passwords from --password-file, "
      "SIGNET_PASSWORD_FILE or SIGNET_PASSWORD (new ones: --new-password-file, "
      "SIGNET_NEW_PASSWORD_FILE, SIGNET_NEW_PASSWORD), else the terminal; a TOTP code from "
      "--otp, SIGNET_OTP or the terminal.");

  std::vector<NamedCommand> commands = LocalCommands();
  for (auto& remote : RemoteCommands()) commands.push_back(std::move(remote));
  std::map<std::string, CLI::App*> groups;
  std::vector<std::pair<CLI::App*, Command*>> subs;
  for (auto& c : commands) {
    CLI::App* parent = &app;
    for (size_t i = 0; i + 1 < c.path.size(); ++i) {
      auto& g = groups[c.path[i]];
      if (g == nullptr) {
        g = app.add_subcommand(c.path[i], c.path[i] == "audit"
                                              ? "Verify, export and follow the audit log"
                                              : "Manage " + c.path[i] + "s");
        g->require_subcommand(1);
        g->fallthrough();
      }
      parent = g;
    }
    CLI::App* sub = parent->add_subcommand(c.path.back(), c.description);
    sub->fallthrough();
    c.command->Configure(*sub);
    subs.emplace_back(sub, c.command.get());
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One line, like every other error (CLI11's own report adds a second).
    std::cerr << "signet: " << e.what() << " (see signet --help)\n";
    return kExitUsage;
  }

  for (auto& entry : subs) {
    if (!entry.first->parsed()) continue;
    Command* command = entry.second;
    Status status = [&]() -> Status {
      try {
        return command->Run(global);
      } catch (const std::exception& e) {
        return InternalError(std::string("unexpected failure: ") + e.what());
      }
    }();
    if (status.ok()) {
      // What was done is done, but a script reading the output (a CSR, a listing, a one-time
      // password shown once) must not take an empty or cut file for success.
      std::cout.flush();
      if (!std::cout) {
        std::cerr << "signet: the command was carried out, but its output could not be written "
                     "to standard output (disk full or the reader gone?); anything it shows only "
                     "once, such as a one-time password or a TOTP secret, must be issued again\n";
        return ExitCodeFor(ErrorCode::kUnavailable);
      }
      return kExitOk;
    }
    // Messages can carry a server's words (an error description, a name): escaped, so they
    // cannot drive the terminal.
    std::cerr << "signet: " << TerminalSafe(status.error().message(), 16384) << "\n";
    return ExitCodeFor(status.error().code());
  }
  return kExitUsage;
}

}  // namespace
}  // namespace signet::cli

int main(int argc, char** argv) {
  // A closed pipe on stdout is an error the command reports (exit 7: "must be issued again"),
  // not a silent death by SIGPIPE after a server has already created an account or a key; the
  // server, logging to a pipe whose reader went away, keeps serving.
  std::signal(SIGPIPE, SIG_IGN);
  return signet::cli::Main(argc, argv);
}
