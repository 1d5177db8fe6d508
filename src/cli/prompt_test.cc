#include "cli/prompt.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "common/fs.h"

namespace signet::cli {
namespace {

// Answers prompts from a script and records what was asked.
class FakeTerminal final : public Terminal {
 public:
  explicit FakeTerminal(std::vector<std::string> answers) : answers_(std::move(answers)) {}
  Result<SecretBytes> ReadSecret(std::string_view prompt) override {
    SIGNET_ASSIGN_OR_RETURN(std::string a, Next(prompt, "secret"));
    return SecretBytes(std::string_view(a));
  }
  Result<std::string> ReadLine(std::string_view prompt) override { return Next(prompt, "line"); }

  std::vector<std::string>* asked = nullptr;

 private:
  Result<std::string> Next(std::string_view prompt, std::string_view kind) {
    if (asked != nullptr) asked->push_back(std::string(kind) + ":" + std::string(prompt));
    if (answers_.empty()) return InvalidArgument("nothing was entered");
    std::string a = answers_.front();
    answers_.erase(answers_.begin());
    return a;
  }
  std::vector<std::string> answers_;
};

class PromptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-prompt-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A Prompter over env_ whose terminal answers `answers` (or, with no_tty, does not exist).
  Prompter Make(std::vector<std::string> answers, bool no_tty = false) {
    return Prompter(
        [this](const char* name) -> const char* {
          auto it = env_.find(name);
          return it == env_.end() ? nullptr : it->second.c_str();
        },
        [this, answers, no_tty]() -> Result<std::unique_ptr<Terminal>> {
          ++terminal_opened_;
          if (no_tty) return Unavailable("no terminal");
          auto t = std::make_unique<FakeTerminal>(answers);
          t->asked = &asked_;
          return std::unique_ptr<Terminal>(std::move(t));
        });
  }

  std::string File(const std::string& name, const std::string& content, mode_t mode = 0600) {
    std::string p = dir_ + "/" + name;
    EXPECT_TRUE(fs::WriteFileAtomic(p, AsBytes(content), mode).ok());
    return p;
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
  int terminal_opened_ = 0;
  std::vector<std::string> asked_;
};

TEST_F(PromptTest, PasswordFileOptionWinsAndTheTerminalIsNotOpened) {
  env_["SIGNET_PASSWORD"] = "from-env";
  env_["SIGNET_PASSWORD_FILE"] = File("env-file", "from-env-file\n");
  auto p = Make({"from-tty"}).Password(File("opt-file", "from-option\n"), "Password: ");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->text_view(), "from-option");
  EXPECT_EQ(terminal_opened_, 0);
}

TEST_F(PromptTest, PasswordFromEnvironmentFileThenVariable) {
  env_["SIGNET_PASSWORD"] = "from-env";
  env_["SIGNET_PASSWORD_FILE"] = File("env-file", "from-env-file\n");
  EXPECT_EQ(Make({}).Password("", "Password: ")->text_view(), "from-env-file");
  env_.erase("SIGNET_PASSWORD_FILE");
  EXPECT_EQ(Make({}).Password("", "Password: ")->text_view(), "from-env");
  EXPECT_EQ(terminal_opened_, 0);
}

TEST_F(PromptTest, PasswordFileReadableByOthersIsRefused) {
  auto p = Make({"from-tty"}).Password(File("loose", "secret\n", 0644), "Password: ");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(p.error().message().find("--password-file"), std::string::npos);
  EXPECT_EQ(terminal_opened_, 0);  // a bad file is an error, not a reason to prompt
}

TEST_F(PromptTest, MissingPasswordFileIsNotFound) {
  auto p = Make({}).Password(dir_ + "/nope", "Password: ");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kNotFound);
}

TEST_F(PromptTest, EmptyVariableCountsAsUnsetAndTheTerminalIsAsked) {
  env_["SIGNET_PASSWORD"] = "";
  auto p = Make({"typed"}).Password("", "Password for a: ");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->text_view(), "typed");
  ASSERT_EQ(asked_.size(), 1u);
  EXPECT_EQ(asked_[0], "secret:Password for a: ");  // echo off
}

// Enter on an empty line would otherwise be sent and count as a failed login.
TEST_F(PromptTest, AnEmptyTypedPasswordIsRefusedBeforeAnythingIsSent) {
  auto p = Make({""}).Password("", "Password: ");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.error().message().find("no password was entered"), std::string::npos);
  auto n = Make({""}).NewPassword("");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message().find("no new password was entered"), std::string::npos);
}

TEST_F(PromptTest, NoSourceAndNoTerminalIsAnErrorNamingTheAlternatives) {
  auto p = Make({}, /*no_tty=*/true).Password("", "Password: ");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.error().message().find("--password-file"), std::string::npos);
  EXPECT_NE(p.error().message().find("SIGNET_PASSWORD"), std::string::npos);

  auto n = Make({}, true).NewPassword("");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message().find("--new-password-file"), std::string::npos);
  auto o = Make({}, true).Otp("");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message().find("--otp"), std::string::npos);
  auto u = Make({}, true).User("");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message().find("--user"), std::string::npos);
}

TEST_F(PromptTest, NewPasswordFromFileOrEnvironment) {
  EXPECT_EQ(Make({}).NewPassword(File("new", "n1\n"))->text_view(), "n1");
  env_["SIGNET_NEW_PASSWORD"] = "n2";
  EXPECT_EQ(Make({}).NewPassword("")->text_view(), "n2");
  env_["SIGNET_NEW_PASSWORD_FILE"] = File("new-env", "n3");
  EXPECT_EQ(Make({}).NewPassword("")->text_view(), "n3");
  EXPECT_EQ(terminal_opened_, 0);
}

TEST_F(PromptTest, NewPasswordIsAskedTwiceAndMustMatch) {
  auto same = Make({"correct horse", "correct horse"}).NewPassword("");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->text_view(), "correct horse");
  EXPECT_EQ(asked_.size(), 2u);
  auto differ = Make({"correct horse", "correct hrose"}).NewPassword("");
  ASSERT_FALSE(differ.ok());
  EXPECT_EQ(differ.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(PromptTest, OtpFromOptionThenEnvironmentThenTerminal) {
  env_["SIGNET_OTP"] = "222222";
  EXPECT_EQ(*Make({"333333"}).Otp("111111"), "111111");
  EXPECT_EQ(*Make({"333333"}).Otp(""), "222222");
  env_.erase("SIGNET_OTP");
  EXPECT_EQ(*Make({"333 333"}).Otp(""), "333333");  // as authenticator apps group the digits
  ASSERT_EQ(asked_.size(), 1u);
  EXPECT_EQ(asked_[0], "line:TOTP code: ");
}

TEST_F(PromptTest, OtpMustBeSixToEightDigits) {
  for (const char* bad : {"12345", "123456789", "12345a", "", "１２３４５６"}) {
    auto r = Make({bad}).Otp(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(IsOtpCode("123456"));
  EXPECT_TRUE(IsOtpCode("12345678"));
}

TEST_F(PromptTest, UserFromOptionEnvironmentOrTerminal) {
  env_["SIGNET_USER"] = "env-user";
  EXPECT_EQ(*Make({}).User("opt-user"), "opt-user");
  EXPECT_EQ(*Make({}).User(""), "env-user");
  env_.clear();
  EXPECT_EQ(*Make({"tty-user"}).User(""), "tty-user");
  EXPECT_FALSE(Make({""}).User("").ok());
}

TEST(OpenTerminalTest, RefusesSomethingThatIsNotATerminal) {
  auto t = OpenTerminal("/dev/null");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(OpenTerminal("/nonexistent/tty").ok());
}

// ---- the real terminal code on a pseudo-terminal ----------------------------------------------

class PtyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    ASSERT_GE(master_, 0);
    ASSERT_EQ(::grantpt(master_), 0);
    ASSERT_EQ(::unlockpt(master_), 0);
    slave_path_ = ::ptsname(master_);
    // Held open so the line discipline's settings outlive the Terminal under test.
    slave_ = ::open(slave_path_.c_str(), O_RDWR | O_NOCTTY);
    ASSERT_GE(slave_, 0);
  }
  void TearDown() override {
    ::close(slave_);
    ::close(master_);
  }

  bool EchoOn() const {
    struct termios t {};
    EXPECT_EQ(::tcgetattr(slave_, &t), 0);
    return (t.c_lflag & ECHO) != 0;
  }

  // Waits (bounded) until echo has the given state.
  bool WaitForEcho(bool on) const {
    for (int i = 0; i < 500; ++i) {
      if (EchoOn() == on) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Everything the terminal showed so far (what the user would see).
  std::string Shown() const {
    std::string out;
    char buf[256];
    for (;;) {
      struct pollfd p {
        master_, POLLIN, 0
      };
      if (::poll(&p, 1, 100) <= 0) break;
      ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // What the terminal showed, read until it holds `needle` `count` times (bounded: 10 s). The
  // pty's line discipline may pass output and echo on later than a quiet 100 ms under load.
  std::string ShownUntil(std::string_view needle, int count = 1) const {
    std::string out;
    for (int i = 0; i < 100; ++i) {
      out += Shown();
      int found = 0;
      for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) {
        ++found;
      }
      if (found >= count) break;
    }
    return out;
  }

  void Type(std::string_view text) const {
    ASSERT_EQ(::write(master_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }

  int master_ = -1;
  int slave_ = -1;
  std::string slave_path_;
};

TEST_F(PtyTest, ReadSecretHidesTheInputAndRestoresEcho) {
  ASSERT_TRUE(EchoOn());
  auto tty = OpenTerminal(slave_path_);
  ASSERT_TRUE(tty.ok()) << tty.error().message();
  Result<SecretBytes> secret = InternalError("not read");
  std::thread reader([&] { secret = (*tty)->ReadSecret("Password: "); });
  ASSERT_TRUE(WaitForEcho(false));
  Type("hunter2-secret\n");
  reader.join();
  ASSERT_TRUE(secret.ok()) << secret.error().message();
  EXPECT_EQ(secret->text_view(), "hunter2-secret");
  EXPECT_TRUE(EchoOn());
  std::string shown = ShownUntil("Password: ");
  EXPECT_NE(shown.find("Password: "), std::string::npos) << shown;
  EXPECT_EQ(shown.find("hunter2"), std::string::npos) << shown;
}

TEST_F(PtyTest, ReadLineEchoes) {
  auto tty = OpenTerminal(slave_path_);
  ASSERT_TRUE(tty.ok());
  Result<std::string> line = InternalError("not read");
  std::thread reader([&] { line = (*tty)->ReadLine("Account: "); });
  // Typed once the prompt shows, as a person would.
  std::string shown = ShownUntil("Account: ");
  EXPECT_TRUE(EchoOn());
  Type("alice\n");
  reader.join();
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ(*line, "alice");
  shown += ShownUntil("alice");
  EXPECT_NE(shown.find("alice"), std::string::npos) << "[" << shown << "]";
}

TEST_F(PtyTest, EndOfInputRestoresEchoAndIsAnError) {
  auto tty = OpenTerminal(slave_path_);
  ASSERT_TRUE(tty.ok());
  Result<SecretBytes> secret = InternalError("not read");
  std::thread reader([&] { secret = (*tty)->ReadSecret("Password: "); });
  ASSERT_TRUE(WaitForEcho(false));
  Type("\x04");  // Ctrl-D at the start of a line: end of input
  reader.join();
  ASSERT_FALSE(secret.ok());
  EXPECT_EQ(secret.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(EchoOn());
}

TEST_F(PtyTest, ASignalWhilePromptingRestoresEchoBeforeTheProcessEnds) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto tty = OpenTerminal(slave_path_);
    if (!tty.ok()) ::_exit(3);
    auto secret = (*tty)->ReadSecret("Password: ");
    ::_exit(secret.ok() ? 0 : 4);  // not reached: the signal ends the process
  }
  ASSERT_TRUE(WaitForEcho(false));
  ASSERT_EQ(::kill(child, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  EXPECT_TRUE(EchoOn());
}

// Ctrl-Z while the secret is being typed: the process stops with echo back on (the shell would
// otherwise be left without echo, and after `fg` the rest of the secret would show), and once
// continued it asks again with echo off.
TEST_F(PtyTest, SuspendingWhilePromptingStopsWithEchoOnAndAsksAgain) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Its own process group, whose parent is in another group of the session: not orphaned, so
    // SIGTSTP's default action does stop it.
    ::setpgid(0, 0);
    auto tty = OpenTerminal(slave_path_);
    if (!tty.ok()) ::_exit(3);
    auto secret = (*tty)->ReadSecret("Password: ");
    if (!secret.ok()) ::_exit(4);
    ::_exit(secret->text_view() == "after-resume" ? 0 : 5);
  }
  ASSERT_TRUE(WaitForEcho(false));
  ASSERT_EQ(::kill(child, SIGTSTP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status)) << status;
  EXPECT_TRUE(EchoOn());  // stopped, and the terminal is usable
  ASSERT_EQ(::kill(child, SIGCONT), 0);
  ASSERT_TRUE(WaitForEcho(false));  // asking again
  Type("after-resume\n");
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(EchoOn());
  const std::string shown = ShownUntil("Password: ", 2);
  const size_t first = shown.find("Password: ");
  ASSERT_NE(first, std::string::npos) << shown;
  EXPECT_NE(shown.find("Password: ", first + 1), std::string::npos) << shown;
  EXPECT_EQ(shown.find("after-resume"), std::string::npos) << shown;
}

}  // namespace
}  // namespace signet::cli
