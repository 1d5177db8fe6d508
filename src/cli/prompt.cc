#include "cli/prompt.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "common/fs.h"

namespace signet::cli {
namespace {

constexpr size_t kMaxLine = 4096;

// ---- restoring the terminal from a signal handler ----------------------------------------------
// A signal handler can reach only static storage, so the settings to restore live here while echo
// is off. EchoOffGuard fills them before installing the handlers and clears them after removing
// them; only one guard exists at a time (the CLI reads one prompt at a time, on one thread).
constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
volatile std::sig_atomic_t g_echo_off_fd = -1;
struct termios g_saved_termios {};
struct sigaction g_previous_actions[std::size(kRestoreSignals)]{};
bool g_installed[std::size(kRestoreSignals)] = {};

// Suspension (Ctrl-Z) while echo is off: SIGTSTP is blocked on the reading thread from before
// echo goes off, and only let through inside ppoll() while waiting for input, so it cannot be
// lost between the prompt and the wait, nor stop the process with echo off before the handler is
// in place. The handler only notes it, ppoll() returns EINTR, and ReadSecret restores the
// terminal, stops the process with the default action and, once continued, asks again. Stopping
// with echo off would leave the shell without echo, and on `fg` the shell does not turn it off
// again, so the rest of the secret would be shown as it is typed.
volatile std::sig_atomic_t g_stop_signal = 0;
struct sigaction g_previous_stop_action {};
bool g_stop_installed = false;

extern "C" void NoteStop(int sig) { g_stop_signal = sig; }

extern "C" void RestoreTerminalAndReraise(int sig) {
  // Only async-signal-safe calls: tcsetattr, sigaction, raise.
  const int fd = g_echo_off_fd;
  if (fd >= 0) ::tcsetattr(fd, TCSANOW, &g_saved_termios);
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
    if (kRestoreSignals[i] == sig) ::sigaction(sig, &g_previous_actions[i], nullptr);
  }
  // Blocked until this handler returns, then delivered with the previous action.
  ::raise(sig);
}

// Turns echo off on `fd` for its lifetime; the destructor restores the saved settings and the
// previous signal actions, whichever way the read ends.
class EchoOffGuard {
 public:
  static Result<std::unique_ptr<EchoOffGuard>> Engage(int fd) {
    struct termios saved {};
    if (::tcgetattr(fd, &saved) != 0) {
      return Unavailable(std::string("cannot read the terminal settings: ") + std::strerror(errno));
    }
    auto guard = std::unique_ptr<EchoOffGuard>(new EchoOffGuard(fd));
    // A SIGTSTP from here on waits for the ppoll() in ReadRawLine (or for the destructor).
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTSTP);
    if (::pthread_sigmask(SIG_BLOCK, &stop_set, &guard->previous_mask_) == 0) {
      guard->mask_changed_ = true;
    }
    g_saved_termios = saved;
    g_echo_off_fd = fd;
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      struct sigaction previous {};
      if (::sigaction(kRestoreSignals[i], nullptr, &previous) != 0) continue;
      // An ignored signal does not end the process, so there is nothing to restore for it.
      if (previous.sa_handler == SIG_IGN) continue;
      struct sigaction action {};
      action.sa_handler = RestoreTerminalAndReraise;
      sigemptyset(&action.sa_mask);
      action.sa_flags = 0;
      g_previous_actions[i] = previous;
      if (::sigaction(kRestoreSignals[i], &action, nullptr) == 0) g_installed[i] = true;
    }
    struct termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK);
    quiet.c_lflag |= static_cast<tcflag_t>(ECHONL);  // the Enter key still moves to a new line
    // TCSAFLUSH drops type-ahead, which was echoed before echo went off.
    if (::tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
      return Unavailable(std::string("cannot turn off echo on the terminal: ") +
                         std::strerror(errno));
    }
    // Only after echo is off (a background process's tcsetattr may itself stop it with SIGTTOU,
    // by default), and only where the default action would stop the process: a program that
    // ignores or handles SIGTSTP keeps its choice.
    g_stop_signal = 0;
    struct sigaction previous_stop {};
    if (::sigaction(SIGTSTP, nullptr, &previous_stop) == 0 && previous_stop.sa_handler == SIG_DFL) {
      struct sigaction action {};
      action.sa_handler = NoteStop;
      sigemptyset(&action.sa_mask);
      action.sa_flags = 0;  // no SA_RESTART: the read must return
      g_previous_stop_action = previous_stop;
      if (::sigaction(SIGTSTP, &action, nullptr) == 0) g_stop_installed = true;
    }
    return guard;
  }

  // The stop signal that arrived while echo was off (0: none), cleared.
  static int TakeStopSignal() {
    const int sig = g_stop_signal;
    g_stop_signal = 0;
    return sig;
  }

  ~EchoOffGuard() {
    if (g_stop_installed) ::sigaction(SIGTSTP, &g_previous_stop_action, nullptr);
    g_stop_installed = false;
    ::tcsetattr(fd_, TCSANOW, &g_saved_termios);
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      if (g_installed[i]) ::sigaction(kRestoreSignals[i], &g_previous_actions[i], nullptr);
      g_installed[i] = false;
    }
    g_echo_off_fd = -1;
    // Last: a SIGTSTP still pending now takes its default action, with echo already back on.
    if (mask_changed_) ::pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }

  // The signal mask to wait for input with: the thread's mask before the guard, so SIGTSTP (and
  // whatever else it let through) can interrupt the wait.
  const sigset_t& wait_mask() const { return previous_mask_; }

  // One guard owns the process-wide signal state; a copy would restore it twice.
  EchoOffGuard(const EchoOffGuard&) = delete;
  EchoOffGuard& operator=(const EchoOffGuard&) = delete;

 private:
  explicit EchoOffGuard(int fd) : fd_(fd) { sigemptyset(&previous_mask_); }
  int fd_;
  sigset_t previous_mask_;
  bool mask_changed_ = false;
};

class DevTty final : public Terminal {
 public:
  explicit DevTty(int fd) : fd_(fd) {}
  ~DevTty() override { ::close(fd_); }
  // Owns the descriptor.
  DevTty(const DevTty&) = delete;
  DevTty& operator=(const DevTty&) = delete;

  Result<SecretBytes> ReadSecret(std::string_view prompt) override {
    std::array<uint8_t, kMaxLine + 1> buf{};
    for (;;) {
      SIGNET_ASSIGN_OR_RETURN(auto guard, EchoOffGuard::Engage(fd_));
      Status shown = Write(prompt);
      auto len = shown.ok() ? ReadRawLine(buf.data(), buf.size(), &guard->wait_mask())
                            : Result<size_t>(shown.error());
      const int stop = EchoOffGuard::TakeStopSignal();
      guard.reset();  // echo back on, SIGTSTP back to its default
      if (stop != 0) {
        SecureWipe(buf.data(), buf.size());
        (void)Write("\n");
        ::raise(stop);  // stops here, echo on; returns once the process is continued
        continue;       // ask again
      }
      if (!len.ok()) {
        SecureWipe(buf.data(), buf.size());
        return std::move(len).error();
      }
      SecretBytes out(ByteView(buf.data(), *len));
      SecureWipe(buf.data(), buf.size());
      return out;
    }
  }

  Result<std::string> ReadLine(std::string_view prompt) override {
    SIGNET_TRY(Write(prompt));
    std::array<uint8_t, kMaxLine + 1> buf{};
    SIGNET_ASSIGN_OR_RETURN(size_t len, ReadRawLine(buf.data(), buf.size()));
    return std::string(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(len));
  }

 private:
  Status Write(std::string_view text) {
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Unavailable(std::string("cannot write to the terminal: ") + std::strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
    return OkStatus();
  }

  // Reads up to a newline into buf (without it, and without a trailing CR); returns the length.
  // `wait_mask` (while an EchoOffGuard blocks SIGTSTP): input is awaited with ppoll() under that
  // mask, and once NoteStop has run the read returns what it has (the caller takes the signal).
  Result<size_t> ReadRawLine(uint8_t* buf, size_t cap, const sigset_t* wait_mask = nullptr) {
    size_t len = 0;
    for (;;) {
      if (wait_mask != nullptr) {
        if (g_stop_signal != 0) return len;
        struct pollfd p {
          fd_, POLLIN, 0
        };
        if (::ppoll(&p, 1, nullptr, wait_mask) < 0) {
          if (errno == EINTR) continue;  // the check above sees a stop
          return Unavailable(std::string("cannot wait for the terminal: ") + std::strerror(errno));
        }
      }
      uint8_t c = 0;
      ssize_t n = ::read(fd_, &c, 1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Unavailable(std::string("cannot read from the terminal: ") + std::strerror(errno));
      }
      if (n == 0) {
        if (len == 0) return InvalidArgument("nothing was entered");
        break;
      }
      if (c == '\n') break;
      if (len + 1 >= cap) {
        // Drain the rest of the line so it does not become the next answer.
        while (::read(fd_, &c, 1) == 1 && c != '\n') {
        }
        return InvalidArgument("the answer is longer than " + std::to_string(kMaxLine) + " bytes");
      }
      buf[len++] = c;
    }
    if (len > 0 && buf[len - 1] == '\r') --len;
    return len;
  }

  int fd_;
};

Result<SecretBytes> ReadSecretFileNamed(const std::string& path, std::string_view source) {
  auto secret = fs::ReadSecretFile(path);
  if (!secret.ok()) return secret.error().WithContext(source);
  return secret;
}

}  // namespace

Result<std::unique_ptr<Terminal>> OpenTerminal(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return Unavailable("no terminal to ask on (" + path + ": " + std::strerror(errno) + ")");
  }
  if (::isatty(fd) == 0) {
    ::close(fd);
    return Unavailable(path + " is not a terminal");
  }
  return std::unique_ptr<Terminal>(new DevTty(fd));
}

bool IsOtpCode(std::string_view code) {
  if (code.size() < 6 || code.size() > 8) return false;
  for (char c : code) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Prompter::Prompter(EnvLookup env, TerminalOpener open_terminal)
    : env_(std::move(env)), open_terminal_(std::move(open_terminal)) {}

Prompter Prompter::ForProcess() {
  return Prompter([](const char* name) -> const char* { return std::getenv(name); },
                  [] { return OpenTerminal(); });
}

const char* Prompter::Env(const char* name) const {
  const char* value = env_ ? env_(name) : nullptr;
  return (value != nullptr && value[0] != '\0') ? value : nullptr;
}

Result<Terminal*> Prompter::Tty(std::string_view no_terminal) {
  if (terminal_ == nullptr) {
    auto opened = open_terminal_ ? open_terminal_() : Unavailable("no terminal");
    if (!opened.ok()) return InvalidArgument(std::string(no_terminal));
    terminal_ = std::move(*opened);
  }
  return terminal_.get();
}

Result<SecretBytes> Prompter::Password(const std::string& password_file, std::string_view prompt) {
  if (!password_file.empty()) return ReadSecretFileNamed(password_file, "--password-file");
  if (const char* file = Env(kEnvPasswordFile)) return ReadSecretFileNamed(file, kEnvPasswordFile);
  if (const char* value = Env(kEnvPassword)) return SecretBytes(std::string_view(value));
  SIGNET_ASSIGN_OR_RETURN(
      Terminal * tty,
      Tty("no password given and no terminal to ask on: use --password-file FILE or set "
          "SIGNET_PASSWORD"));
  SIGNET_ASSIGN_OR_RETURN(SecretBytes typed, tty->ReadSecret(prompt));
  // Enter on an empty line is not a password: sent, it would count as a failed login toward the
  // lock-out and spend the TOTP code.
  if (typed.empty()) return InvalidArgument("no password was entered; nothing was sent");
  return typed;
}

Result<SecretBytes> Prompter::NewPassword(const std::string& new_password_file) {
  if (!new_password_file.empty()) {
    return ReadSecretFileNamed(new_password_file, "--new-password-file");
  }
  if (const char* file = Env(kEnvNewPasswordFile)) {
    return ReadSecretFileNamed(file, kEnvNewPasswordFile);
  }
  if (const char* value = Env(kEnvNewPassword)) return SecretBytes(std::string_view(value));
  SIGNET_ASSIGN_OR_RETURN(
      Terminal * tty,
      Tty("no new password given and no terminal to ask on: use --new-password-file FILE or set "
          "SIGNET_NEW_PASSWORD"));
  SIGNET_ASSIGN_OR_RETURN(SecretBytes first, tty->ReadSecret("New password: "));
  if (first.empty()) return InvalidArgument("no new password was entered; nothing changed");
  SIGNET_ASSIGN_OR_RETURN(SecretBytes second, tty->ReadSecret("New password again: "));
  if (!first.Equals(second)) {
    return InvalidArgument("the two new passwords differ; nothing changed");
  }
  return first;
}

Result<std::string> Prompter::Otp(const std::string& otp_option) {
  std::string code;
  if (!otp_option.empty()) {
    code = otp_option;
  } else if (const char* value = Env(kEnvOtp)) {
    code = value;
  } else {
    SIGNET_ASSIGN_OR_RETURN(
        Terminal * tty,
        Tty("no TOTP code given and no terminal to ask on: use --otp CODE or set SIGNET_OTP"));
    SIGNET_ASSIGN_OR_RETURN(code, tty->ReadLine("TOTP code: "));
  }
  // Authenticator apps show "123 456"; the space is not part of the code.
  std::erase(code, ' ');
  if (!IsOtpCode(code)) {
    return InvalidArgument("a TOTP code is 6 to 8 digits, as the authenticator app shows it");
  }
  return code;
}

Result<std::string> Prompter::User(const std::string& user_option) {
  std::string name;
  if (!user_option.empty()) {
    name = user_option;
  } else if (const char* value = Env(kEnvUser)) {
    name = value;
  } else {
    SIGNET_ASSIGN_OR_RETURN(
        Terminal * tty,
        Tty("no account name given and no terminal to ask on: use --user NAME or set "
            "SIGNET_USER"));
    SIGNET_ASSIGN_OR_RETURN(name, tty->ReadLine("Account: "));
  }
  if (name.empty()) return InvalidArgument("the account name is empty");
  return name;
}

}  // namespace signet::cli
