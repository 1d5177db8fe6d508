// Where the remote CLI gets secrets and other answers from: an explicit option (a file for
// secrets; the single-use TOTP code itself), an environment variable for scripts and CI, or the
// user's terminal. Passwords are never taken from the command line, where other users can read
// them in /proc and shell history keeps them.
//
// Order, first found wins:
//   password      --password-file FILE, SIGNET_PASSWORD_FILE, SIGNET_PASSWORD, terminal (no echo)
//   new password  --new-password-file FILE, SIGNET_NEW_PASSWORD_FILE, SIGNET_NEW_PASSWORD,
//                 terminal (no echo, asked twice)
//   TOTP code     --otp CODE, SIGNET_OTP, terminal
//   user name     --user NAME, SIGNET_USER, terminal
// Password files must be owner-only (fs::ReadSecretFile). An empty environment variable counts
// as unset. Without any source and without a terminal the answer is InvalidArgument naming the
// non-interactive forms: a script never hangs waiting for input.
//
// Not thread-safe (a CLI is one thread). The terminal implementation installs signal handlers
// while echo is off; see OpenTerminal.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::cli {

// The user's terminal, the port the prompts talk to (a fake in tests).
class Terminal {
 public:
  virtual ~Terminal() = default;
  // Shows `prompt` and reads one line with echo off; the terminal's settings are restored before
  // this returns, on every path. The line ends at a newline (not included) or end of input.
  // InvalidArgument if nothing was entered (end of input at once) or the line is over 4 KiB.
  // Suspending the process (Ctrl-Z, SIGTSTP) while it waits turns echo back on before it stops;
  // once continued it asks again from the start (what was typed before is discarded).
  virtual Result<SecretBytes> ReadSecret(std::string_view prompt) = 0;
  // The same with echo on, for answers that are not secret.
  virtual Result<std::string> ReadLine(std::string_view prompt) = 0;
};

// Opens the terminal device at `path` (by default the process's controlling terminal) for
// prompting; stdin and stdout are left alone, so `signet ... | jq` still prompts. Unavailable if
// it cannot be opened (no controlling terminal: cron, CI, `setsid`) or is not a terminal.
//
// While echo is off, SIGINT, SIGTERM, SIGHUP and SIGQUIT restore the terminal's settings and
// then take their previous action (normally: end the process), so an interrupted prompt never
// leaves a terminal without echo. The handlers are process-wide; do not read from two Terminals
// at once.
Result<std::unique_ptr<Terminal>> OpenTerminal(const std::string& path = "/dev/tty");

// Looks up an environment variable; null when unset. Tests pass a map.
using EnvLookup = std::function<const char*(const char*)>;
// Opens the terminal when a prompt is needed; called at most once per Prompter.
using TerminalOpener = std::function<Result<std::unique_ptr<Terminal>>()>;

// Environment variable names (public so help texts and tests name the same ones).
inline constexpr char kEnvPassword[] = "SIGNET_PASSWORD";
inline constexpr char kEnvPasswordFile[] = "SIGNET_PASSWORD_FILE";
inline constexpr char kEnvNewPassword[] = "SIGNET_NEW_PASSWORD";
inline constexpr char kEnvNewPasswordFile[] = "SIGNET_NEW_PASSWORD_FILE";
inline constexpr char kEnvOtp[] = "SIGNET_OTP";
inline constexpr char kEnvUser[] = "SIGNET_USER";

class Prompter {
 public:
  Prompter(EnvLookup env, TerminalOpener open_terminal);
  // The process environment and /dev/tty.
  static Prompter ForProcess();

  // The account password (see the order above). `password_file` is the --password-file value
  // (empty: not given). Errors of the file (NotFound, PermissionDenied for a loose mode,
  // InvalidArgument when empty) are returned with the option or variable that named it; a bad
  // file is never a reason to fall back to the terminal.
  Result<SecretBytes> Password(const std::string& password_file, std::string_view prompt);

  // A new password: from a file or the environment as is; from the terminal asked twice, and
  // InvalidArgument if the two differ.
  Result<SecretBytes> NewPassword(const std::string& new_password_file);

  // A TOTP code: 6 to 8 ASCII digits (RFC 6238 / RFC 4226 §5.3), else InvalidArgument, so a typo
  // does not cost one of the five attempts before lock-out.
  Result<std::string> Otp(const std::string& otp_option);

  // The account name to log in as.
  Result<std::string> User(const std::string& user_option);

 private:
  // The environment variable's value, or null when unset or empty.
  const char* Env(const char* name) const;
  // The terminal, opened on first use; `no_terminal` says which options would have avoided it.
  Result<Terminal*> Tty(std::string_view no_terminal);

  EnvLookup env_;
  TerminalOpener open_terminal_;
  std::unique_ptr<Terminal> terminal_;
};

// Whether `code` has the shape of a TOTP code (6 to 8 ASCII digits).
bool IsOtpCode(std::string_view code);

}  // namespace signet::cli
