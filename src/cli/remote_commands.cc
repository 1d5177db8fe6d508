#include "cli/remote_commands.h"

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <nlohmann/json.hpp>
#include <utility>

#include "cli/output.h"
#include "cli/prompt.h"
#include "cli/qr_terminal.h"
#include "cli/remote_context.h"
#include "cli/remote_session.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "common/text.h"

namespace signet::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kInfoTarget = "/csc/v2/info";
constexpr std::string_view kLoginTarget = "/csc/v2/auth/login";
constexpr std::string_view kRevokeTarget = "/csc/v2/auth/revoke";
// The longest token lifetime a login answer may claim (a day; signet's tokens live minutes).
constexpr int64_t kMaxTokenLifetimeSeconds = 24 * 3600;

// ASCII only: every non-ASCII character, C1 controls included, is written as \uXXXX (and dump()
// escapes the C0 ones), so a server's strings cannot reach the terminal as control sequences.
// Bytes that are not UTF-8 (a file name from a Latin-1 home folder) are shown as U+FFFD rather
// than failing a command whose work is done.
void PrintJson(const json& j) {
  std::cout << j.dump(2, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace) << "\n";
}

// Overwrites a string member of a JSON answer that held a secret.
void WipeMember(json& j, const char* name) {
  if (!j.is_object()) return;
  auto it = j.find(name);
  if (it != j.end() && it->is_string()) {
    std::string& s = it->get_ref<std::string&>();
    SecureWipe(s.data(), s.size());
    s.clear();
  }
}

// ---- rendering -----------------------------------------------------------------------------
// Display only: a member missing from the answer shows as empty rather than failing the command.

std::string Str(const json& j, const char* name) {
  if (!j.is_object()) return "";
  auto it = j.find(name);
  // Text for the terminal: a server's strings are shown with their control characters escaped.
  return (it != j.end() && it->is_string()) ? TerminalSafe(it->get<std::string>()) : "";
}

bool Bool(const json& j, const char* name) {
  if (!j.is_object()) return false;
  auto it = j.find(name);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string JoinStrings(const json& j, const char* name) {
  std::string out;
  if (!j.is_object() || !j.contains(name) || !j[name].is_array()) return out;
  for (const json& v : j[name]) {
    if (!v.is_string()) continue;
    if (!out.empty()) out += ", ";
    out += TerminalSafe(v.get<std::string>());
  }
  return out;
}

std::string OrNone(std::string s) { return s.empty() ? "(none)" : s; }

std::string AccountText(const json& a) {
  std::string out;
  out += "name:          " + Str(a, "name") + "\n";
  out += "id:            " + Str(a, "id") + "\n";
  out += "kind:          " + Str(a, "kind") + "\n";
  out += "roles:         " + OrNone(JoinStrings(a, "roles")) + "\n";
  out += "state:         " + Str(a, "state") + "\n";
  if (Str(a, "kind") == "service") {
    out += "client cert:   sha256 " + Str(a, "client_cert_sha256") + "\n";
  } else {
    out += "totp:          " + std::string(Bool(a, "totp_enrolled") ? "enrolled" : "not enrolled") +
           "\n";
    if (Bool(a, "must_change_password")) {
      out += "password:      one-time; must be changed with 'signet password'\n";
    }
  }
  if (a.contains("failed_attempts") && a["failed_attempts"].is_number_integer()) {
    out += "failed logins: " + std::to_string(a["failed_attempts"].get<int64_t>()) + "\n";
  }
  if (!Str(a, "locked_until").empty()) out += "locked until:  " + Str(a, "locked_until") + "\n";
  out += "created:       " + Str(a, "created_at") + "\n";
  out += "updated:       " + Str(a, "updated_at") + "\n";
  return out;
}

std::string AccountTable(const json& accounts) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "KIND", "ROLES", "STATE", "LOCKED UNTIL"});
  for (const json& a : accounts) {
    std::string locked = Str(a, "locked_until");
    rows.push_back({Str(a, "name"), Str(a, "kind"), OrNone(JoinStrings(a, "roles")),
                    Str(a, "state"), locked.empty() ? "-" : locked});
  }
  return Table(rows);
}

// Secrets the server hands out to be shown once (a one-time password, a TOTP secret or URI), as
// (value, member name): each must be printable ASCII without spaces, or the answer is refused
// rather than shown, and every one of them is wiped.
Status CheckShowable(std::initializer_list<std::pair<std::string*, const char*>> secrets) {
  for (const auto& [value, name] : secrets) {
    for (char c : *value) {
      if (c >= 0x21 && c <= 0x7e) continue;
      for (const auto& [v, n] : secrets) SecureWipe(v->data(), v->size());
      return UnexpectedAnswer(std::string("'") + name +
                              "' holds a character that is not printable ASCII");
    }
  }
  return OkStatus();
}

// The TOTP enrolment of a new or reset account, shown once: secret, URI and a QR code.
std::string EnrolmentText(const std::string& secret, const std::string& uri) {
  auto qr = RenderQrForTerminal(uri);
  std::string out;
  out += "  TOTP secret        " + secret + "\n";
  out += "  TOTP URI           " + uri + "\n\n";
  out += "Scan this with an authenticator app:\n\n";
  out += qr.ok() ? *qr : "(QR code unavailable: " + qr.error().message() + ")\n";
  return out;
}

std::string PolicyText(const std::string& key, const json& p) {
  auto rate = [&](const char* name) {
    int64_t v = (p.contains(name) && p[name].is_number_integer()) ? p[name].get<int64_t>() : 0;
    return v == 0 ? std::string("no limit") : std::to_string(v) + " per minute";
  };
  std::string max = (p.contains("max_signatures_per_authorization") &&
                     p["max_signatures_per_authorization"].is_number_integer())
                        ? std::to_string(p["max_signatures_per_authorization"].get<int64_t>())
                        : "";
  std::string out;
  out += "key:                    " + key + "\n";
  out += "signature schemes:      " + OrNone(JoinStrings(p, "sign_schemes")) + "\n";
  out += "hash algorithms:        " + OrNone(JoinStrings(p, "hash_algorithms")) + "\n";
  out += "max signatures per SAD: " + max + "\n";
  out += "rate per key:           " + rate("rate_per_minute_key") + "\n";
  out += "rate per account:       " + rate("rate_per_minute_account") + "\n";
  return out;
}

Result<std::string> AbsolutePath(const std::string& path) {
  if (path.empty()) return std::string();
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  if (ec) return InvalidArgument("cannot resolve path " + path + ": " + ec.message());
  return abs.lexically_normal().string();
}

// ---- authentication ---------------------------------------------------------------------------

class LoginCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--user,-u", user_, "Account name (or SIGNET_USER; asked if not given)");
    app.add_option("--ca-file", ca_file_,
                   "PEM file of the CA that issued the server's certificate (the embedded "
                   "default: <data folder>/tls-server.crt); default: the system trust store");
    app.add_option("--password-file", password_file_,
                   "Owner-only file holding the password (or SIGNET_PASSWORD_FILE / "
                   "SIGNET_PASSWORD; asked if not given)");
    app.add_option("--otp", otp_, "The current TOTP code (or SIGNET_OTP; asked if not given)");
    app.add_option("--client-cert", client_cert_,
                   "Service account: PEM client certificate for mTLS (no password, no TOTP)");
    app.add_option("--client-key", client_key_, "Service account: its private key (owner-only)");
  }

  Status Run(const GlobalOptions& global) override {
    Session session;
    session.server_url = ServerFromOptions(global);
    if (session.server_url.empty()) {
      return InvalidArgument(
          "login needs --server URL (or SIGNET_SERVER), e.g. "
          "--server https://127.0.0.1:8443");
    }
    if (client_cert_.empty() != client_key_.empty()) {
      return InvalidArgument("--client-cert and --client-key go together");
    }
    const bool mtls = !client_cert_.empty();
    if (mtls && (!user_.empty() || !password_file_.empty() || !otp_.empty())) {
      return InvalidArgument(
          "a service account logs in with its client certificate only; "
          "drop --user, --password-file and --otp");
    }
    SIGNET_ASSIGN_OR_RETURN(session.ca_file, AbsolutePath(ca_file_));
    if (!session.ca_file.empty()) {
      // Pinned now: later commands trust what was read here, not what the file holds by then.
      SIGNET_ASSIGN_OR_RETURN(Bytes pem, fs::ReadFile(session.ca_file, kMaxPinnedCaBytes));
      if (pem.empty()) return InvalidArgument("CA file " + session.ca_file + " is empty");
      // PEM is printable ASCII (RFC 7468 §2); the pin is kept as a JSON string, which could hold
      // no other bytes as they are.
      for (size_t i = 0; i < pem.size(); ++i) {
        const uint8_t b = pem[i];
        if ((b < 0x20 && b != '\n' && b != '\r' && b != '\t') || b > 0x7e) {
          return InvalidArgument("CA file " + session.ca_file + " is not PEM text: byte " +
                                 std::to_string(i) + " is 0x" + HexEncode(ByteView(&pem[i], 1)) +
                                 ", not printable ASCII");
        }
      }
      session.ca_certificates.assign(pem.begin(), pem.end());
    }
    SIGNET_ASSIGN_OR_RETURN(session.client_certificate_file, AbsolutePath(client_cert_));
    SIGNET_ASSIGN_OR_RETURN(session.client_private_key_file, AbsolutePath(client_key_));
    // Before any prompt: a bad HOME, URL, CA file or server should not cost the user a TOTP code.
    SIGNET_ASSIGN_OR_RETURN(std::string path, DefaultSessionFilePath());
    SIGNET_ASSIGN_OR_RETURN(auto http, client::HttpsClient::Create(ClientOptionsFor(session)));
    // CSC `info` needs no authentication: it proves the server is reachable and its certificate
    // trusted before anyone types a password.
    SIGNET_TRY(client::CallJson(*http, kInfoTarget, json::object()));

    SystemClock clock;
    Result<json> answer = InternalError("unreachable");
    if (mtls) {
      answer = CallJsonWithSecrets(*http, kLoginTarget, "{}", {});
    } else {
      Prompter prompter = Prompter::ForProcess();
      SIGNET_ASSIGN_OR_RETURN(std::string user, prompter.User(user_));
      if (user.find(':') != std::string::npos) {
        return InvalidArgument("an account name cannot contain ':'");
      }
      SIGNET_ASSIGN_OR_RETURN(SecretBytes password,
                              prompter.Password(password_file_, "Password for " + user + " at " +
                                                                    session.server_url + ": "));
      SIGNET_ASSIGN_OR_RETURN(std::string otp, prompter.Otp(otp_));
      // RFC 7617: "Basic " base64(user ":" password).
      Bytes pair = ToBytes(user + ":");
      pair.insert(pair.end(), password.view().begin(), password.view().end());
      std::string encoded = Base64Encode(pair);
      std::string authorization;
      authorization.reserve(6 + encoded.size());
      authorization.append("Basic ").append(encoded);
      SecureWipe(pair.data(), pair.size());
      SecureWipe(encoded.data(), encoded.size());
      // Moved into the vector (an initializer list would copy it and free its own copy unwiped).
      std::vector<std::pair<std::string, std::string>> headers;
      headers.emplace_back("Authorization", std::move(authorization));
      answer =
          CallJsonWithSecrets(*http, kLoginTarget, json{{"otp", otp}}.dump(), std::move(headers));
      SecureWipe(otp.data(), otp.size());
      session.account = user;
    }
    if (!answer.ok()) {
      const Error& e = answer.error();
      if (e.code() == ErrorCode::kUnauthenticated || e.code() == ErrorCode::kPermissionDenied) {
        return Error(e.code(), "login failed: " + e.message());
      }
      return e.WithContext("login to " + session.server_url);
    }
    json& a = *answer;
    auto token = AnswerString(a, "access_token");
    auto expires_in = AnswerInt(a, "expires_in");
    WipeMember(a, "access_token");
    if (!token.ok()) return std::move(token).error();
    session.access_token = SecretBytes(std::string_view(*token));
    SecureWipe(token->data(), token->size());
    // From here on the server holds a live token for us: every way out but a saved session
    // revokes it (best effort), so no refused login leaves one valid until it expires.
    struct RevokeUnlessSaved {
      client::HttpsClient& http;
      const Session& session;
      bool saved = false;
      ~RevokeUnlessSaved() {
        if (!saved) {
          (void)client::CallJson(http, kRevokeTarget, json::object(),
                                 session.access_token.text_view());
        }
      }
    } revoke_unless_saved{*http, session};
    if (!expires_in.ok()) return std::move(expires_in).error();
    // Bounded before the arithmetic: a huge value would overflow the time point, a negative one
    // would save a session that has already expired.
    if (*expires_in <= 0 || *expires_in > kMaxTokenLifetimeSeconds) {
      return UnexpectedAnswer("'expires_in' is " + std::to_string(*expires_in) +
                              " s; a token lives between 1 s and " +
                              std::to_string(kMaxTokenLifetimeSeconds) + " s");
    }
    session.expires_at = clock.Now() + std::chrono::seconds(*expires_in);

    // Who the token belongs to (a service account is known only by its certificate), and
    // whether the password must be changed first; auth/whoami is allowed in that state.
    auto who = client::CallJson(*http, ApiTarget("auth/whoami"), json::object(),
                                session.access_token.text_view());
    if (!who.ok()) {
      return who.error().WithContext("logged in, but auth/whoami failed (the token was revoked)");
    }
    SIGNET_ASSIGN_OR_RETURN(const json* account, AnswerMember(*who, "account"));
    SIGNET_ASSIGN_OR_RETURN(session.account, AnswerString(*account, "name"));

    // The old session is read before the new one replaces it and revoked only once the new one
    // is saved: if the save fails, the old session keeps working and the new token is revoked.
    std::optional<Session> previous = PreviousSession(path, session.server_url, clock.Now());
    if (Status saved = SaveSession(path, session); !saved.ok()) {
      return saved.error().WithContext(
          "logged in, but the session could not be saved (the new token was revoked)");
    }
    revoke_unless_saved.saved = true;
    if (previous) RevokeSession(*previous);

    const bool must_change = Bool(*account, "must_change_password");
    if (global.json) {
      PrintJson(json{{"server", session.server_url},
                     {"account", *account},
                     {"expires_at", FormatRfc3339(session.expires_at)},
                     {"session_file", path}});
      return OkStatus();
    }
    std::cout << "logged in to " << session.server_url << " as '" << TerminalSafe(session.account)
              << "' (roles " << OrNone(JoinStrings(*account, "roles"))
              << "); the session expires at " << FormatRfc3339(session.expires_at) << "\n";
    if (must_change) {
      std::cout << "the password is a one-time password: run 'signet password' to set your own "
                   "before anything else\n";
    }
    return OkStatus();
  }

 private:
  // A new login replaces the session file; the old token, if still valid on the same server, is
  // revoked so it does not linger until it expires. Best effort: failures change nothing.
  static std::optional<Session> PreviousSession(const std::string& path, const std::string& server,
                                                TimePoint now) {
    // Also a file others could read: its token may have leaked, so it is revoked all the more
    // (a file others could write is not used: it could point at another server).
    auto old = LoadSession(path, SessionFileAccess::kReadableByOthers);
    if (!old.ok() || old->ExpiredAt(now) || NormalizeServerUrl(old->server_url) != server) {
      return std::nullopt;
    }
    return std::move(*old);
  }
  static void RevokeSession(const Session& old) {
    auto http = client::HttpsClient::Create(ClientOptionsFor(old));
    if (!http.ok()) return;
    (void)client::CallJson(**http, kRevokeTarget, json::object(), old.access_token.text_view());
  }

  std::string user_;
  std::string ca_file_;
  std::string password_file_;
  std::string otp_;
  std::string client_cert_;
  std::string client_key_;
};

class LogoutCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(std::string path, DefaultSessionFilePath());
    SystemClock clock;
    // A file others could read is still revoked (its token may have leaked); one others could
    // write is not used (they could have pointed it at another server).
    auto session = LoadSession(path, SessionFileAccess::kReadableByOthers);
    if (!session.ok() && session.error().code() == ErrorCode::kNotFound) {
      return Report(global, false, false, "not logged in; nothing to do");
    }
    if (!session.ok()) {
      // Unusable (corrupt, or readable by others): remove it all the same.
      SIGNET_TRY(DeleteSession(path));
      return Report(global, true, false,
                    "removed the session file " + path + " (" + session.error().message() +
                        "); its token, if any, was not revoked");
    }
    if (session->ExpiredAt(clock.Now())) {
      SIGNET_TRY(DeleteSession(path));
      return Report(global, true, false, "the session had expired; removed " + path);
    }
    Status revoked = Revoke(*session);
    // The file goes whatever the server said: after logout no command may use the token.
    SIGNET_TRY(DeleteSession(path));
    if (revoked.ok()) {
      return Report(global, true, true,
                    "logged out of " + session->server_url + "; the token is revoked");
    }
    const Error& e = revoked.error();
    if (e.code() == ErrorCode::kUnauthenticated) {
      return Report(global, true, false,
                    "logged out; the server says the token had already expired or been revoked");
    }
    return Error(e.code(), "removed the session file, but the token could not be revoked (" +
                               e.message() + "); it stays valid until " +
                               FormatRfc3339(session->expires_at));
  }

 private:
  static Status Revoke(const Session& session) {
    SIGNET_ASSIGN_OR_RETURN(auto http, client::HttpsClient::Create(ClientOptionsFor(session)));
    SIGNET_TRY(
        client::CallJson(*http, kRevokeTarget, json::object(), session.access_token.text_view()));
    return OkStatus();
  }

  static Status Report(const GlobalOptions& global, bool removed, bool revoked,
                       const std::string& text) {
    if (global.json) {
      PrintJson(json{{"session_removed", removed}, {"token_revoked", revoked}});
    } else {
      std::cout << text << "\n";
    }
    return OkStatus();
  }
};

class PasswordCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--password-file", password_file_,
                   "Owner-only file holding the current password (or SIGNET_PASSWORD_FILE / "
                   "SIGNET_PASSWORD; asked if not given)");
    app.add_option("--new-password-file", new_password_file_,
                   "Owner-only file holding the new password (or SIGNET_NEW_PASSWORD_FILE / "
                   "SIGNET_NEW_PASSWORD; asked twice if not given)");
  }

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    Prompter prompter = Prompter::ForProcess();
    SIGNET_ASSIGN_OR_RETURN(SecretBytes old_password,
                            prompter.Password(password_file_, "Current password: "));
    SIGNET_ASSIGN_OR_RETURN(SecretBytes new_password, prompter.NewPassword(new_password_file_));
    json body = {{"old_password", std::string(old_password.text_view())},
                 {"new_password", std::string(new_password.text_view())}};
    std::string text;
    bool utf8 = true;
    try {
      text = body.dump();
    } catch (const json::type_error&) {
      utf8 = false;  // its message would quote a byte of the password: not passed on
    }
    WipeMember(body, "old_password");
    WipeMember(body, "new_password");
    if (!utf8) {
      return InvalidArgument(
          "the current or the new password is not valid UTF-8 text (a file in another encoding?); "
          "the API carries passwords as JSON strings");
    }
    SIGNET_TRY(remote->CallWithSecrets(ApiTarget("auth/password"), std::move(text)));
    if (global.json) {
      PrintJson(json{{"account", remote->session().account}, {"password_changed", true}});
    } else {
      std::cout << "password of '" << OneLineSafe(remote->session().account, 256) << "' changed\n";
    }
    return OkStatus();
  }

 private:
  std::string password_file_;
  std::string new_password_file_;
};

class WhoamiCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer, remote->Call(ApiTarget("auth/whoami"), json::object()));
    SIGNET_ASSIGN_OR_RETURN(const json* account, AnswerMember(answer, "account"));
    const Session& s = remote->session();
    if (global.json) {
      PrintJson(json{{"server", s.server_url},
                     {"expires_at", FormatRfc3339(s.expires_at)},
                     {"account", *account}});
      return OkStatus();
    }
    std::cout << "server:        " << s.server_url << "\n"
              << "session until: " << FormatRfc3339(s.expires_at) << "\n"
              << AccountText(*account);
    return OkStatus();
  }
};

// ---- accounts ---------------------------------------------------------------------------------

class AccountCreateCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("name", name_, "Account name")->required();
    app.add_option("--role", roles_, "admin, signer or auditor (repeat for several)");
    auto* service = app.add_flag("--service", service_,
                                 "A service account: logs in over mTLS with a client "
                                 "certificate instead of a password and TOTP");
    app.add_option("--client-cert-sha256", client_cert_sha256_,
                   "SHA-256 fingerprint (hex) of the service account's client certificate")
        ->needs(service);
    service->needs("--client-cert-sha256");
  }

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    json body = {{"name", name_}, {"kind", service_ ? "service" : "person"}, {"roles", roles_}};
    if (service_) body["client_cert_sha256"] = client_cert_sha256_;
    SIGNET_ASSIGN_OR_RETURN(json answer, remote->Call(ApiTarget("accounts/create"), body));
    Status printed = Print(global, answer);
    WipeMember(answer, "one_time_password");
    WipeMember(answer, "totp_secret");
    WipeMember(answer, "totp_uri");
    return printed;
  }

 private:
  Status Print(const GlobalOptions& global, const json& answer) {
    SIGNET_ASSIGN_OR_RETURN(const json* account, AnswerMember(answer, "account"));
    if (global.json) {
      PrintJson(answer);
      return OkStatus();
    }
    std::cout << "created account '" << Str(*account, "name") << "' (" << Str(*account, "kind")
              << "; roles " << OrNone(JoinStrings(*account, "roles")) << ")\n";
    if (service_) {
      std::cout << "it logs in with the client certificate whose SHA-256 is "
                << Str(*account, "client_cert_sha256") << "\n";
      return OkStatus();
    }
    SIGNET_ASSIGN_OR_RETURN(std::string otp, AnswerString(answer, "one_time_password"));
    SIGNET_ASSIGN_OR_RETURN(std::string secret, AnswerString(answer, "totp_secret"));
    SIGNET_ASSIGN_OR_RETURN(std::string uri, AnswerString(answer, "totp_uri"));
    SIGNET_TRY(
        CheckShowable({{&otp, "one_time_password"}, {&secret, "totp_secret"}, {&uri, "totp_uri"}}));
    std::string text = "\nShown once; give these to " + name_ + " over a trusted channel:\n\n" +
                       "  one-time password  " + otp + "\n" + EnrolmentText(secret, uri) + "\n" +
                       name_ + " logs in with 'signet login --server URL --user " + name_ +
                       "' and then sets a password with 'signet password'.\n";
    std::cout << text;
    for (std::string* s : {&otp, &secret, &uri, &text}) SecureWipe(s->data(), s->size());
    return OkStatus();
  }

  std::string name_;
  std::vector<std::string> roles_;
  bool service_ = false;
  std::string client_cert_sha256_;
};

class AccountListCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer, remote->Call(ApiTarget("accounts/list"), json::object()));
    SIGNET_ASSIGN_OR_RETURN(const json* accounts, AnswerMember(answer, "accounts"));
    if (!accounts->is_array()) return UnexpectedAnswer("'accounts' is not an array");
    if (global.json) {
      PrintJson(*accounts);
    } else {
      std::cout << AccountTable(*accounts);
    }
    return OkStatus();
  }
};

// Base for account commands that take one positional account name.
class NamedAccountCommand : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("name", name_, "Account name")->required();
  }

 protected:
  std::string name_;
};

class AccountShowCommand final : public NamedAccountCommand {
 public:
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer,
                            remote->Call(ApiTarget("accounts/show"), {{"name", name_}}));
    SIGNET_ASSIGN_OR_RETURN(const json* account, AnswerMember(answer, "account"));
    if (global.json) {
      PrintJson(*account);
    } else {
      std::cout << AccountText(*account);
    }
    return OkStatus();
  }
};

// disable, enable, unlock: {"name"} in, {"account"} out.
class AccountChangeCommand final : public NamedAccountCommand {
 public:
  AccountChangeCommand(std::string route, std::string done)
      : route_(std::move(route)), done_(std::move(done)) {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer, remote->Call(ApiTarget(route_), {{"name", name_}}));
    SIGNET_ASSIGN_OR_RETURN(const json* account, AnswerMember(answer, "account"));
    if (global.json) {
      PrintJson(*account);
    } else {
      std::cout << "account '" << Str(*account, "name") << "' " << done_ << "\n";
    }
    return OkStatus();
  }

 private:
  std::string route_;
  std::string done_;
};

class AccountResetTotpCommand final : public NamedAccountCommand {
 public:
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer,
                            remote->Call(ApiTarget("accounts/reset-totp"), {{"name", name_}}));
    Status printed = Print(global, answer);
    WipeMember(answer, "totp_secret");
    WipeMember(answer, "totp_uri");
    return printed;
  }

 private:
  Status Print(const GlobalOptions& global, const json& answer) {
    SIGNET_ASSIGN_OR_RETURN(std::string secret, AnswerString(answer, "totp_secret"));
    SIGNET_ASSIGN_OR_RETURN(std::string uri, AnswerString(answer, "totp_uri"));
    SIGNET_TRY(CheckShowable({{&secret, "totp_secret"}, {&uri, "totp_uri"}}));
    if (global.json) {
      PrintJson(answer);
    } else {
      std::string text = "new TOTP enrolment for '" + name_ +
                         "' (the old one no longer works); shown once:\n\n" +
                         EnrolmentText(secret, uri);
      std::cout << text;
      SecureWipe(text.data(), text.size());
    }
    SecureWipe(secret.data(), secret.size());
    SecureWipe(uri.data(), uri.size());
    return OkStatus();
  }
};

class AccountResetPasswordCommand final : public NamedAccountCommand {
 public:
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer,
                            remote->Call(ApiTarget("accounts/reset-password"), {{"name", name_}}));
    Status printed = Print(global, answer);
    WipeMember(answer, "one_time_password");
    return printed;
  }

 private:
  Status Print(const GlobalOptions& global, const json& answer) {
    SIGNET_ASSIGN_OR_RETURN(std::string otp, AnswerString(answer, "one_time_password"));
    SIGNET_TRY(CheckShowable({{&otp, "one_time_password"}}));
    if (global.json) {
      PrintJson(answer);
    } else {
      std::string text = "new one-time password for '" + name_ +
                         "' (the old password no longer works and its sessions have ended); "
                         "shown once, give it over a trusted channel:\n\n  one-time password  " +
                         otp + "\n\n" + name_ +
                         " logs in with it and a TOTP code, then sets a password with 'signet "
                         "password'.\n";
      std::cout << text;
      SecureWipe(text.data(), text.size());
    }
    SecureWipe(otp.data(), otp.size());
    return OkStatus();
  }
};

class AccountRolesCommand final : public NamedAccountCommand {
 public:
  void Configure(CLI::App& app) override {
    NamedAccountCommand::Configure(app);
    app.add_option("--role", roles_,
                   "admin, signer or auditor (repeat for several); replaces "
                   "the account's roles")
        ->required();
  }
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer, remote->Call(ApiTarget("accounts/roles"),
                                                      {{"name", name_}, {"roles", roles_}}));
    SIGNET_ASSIGN_OR_RETURN(const json* account, AnswerMember(answer, "account"));
    if (global.json) {
      PrintJson(*account);
    } else {
      std::cout << "account '" << Str(*account, "name") << "' now has roles "
                << OrNone(JoinStrings(*account, "roles")) << "\n";
    }
    return OkStatus();
  }

 private:
  std::vector<std::string> roles_;
};

// ---- key grants and policy --------------------------------------------------------------------

class KeyGrantCommand final : public Command {
 public:
  explicit KeyGrantCommand(bool grant) : grant_(grant) {}
  void Configure(CLI::App& app) override {
    app.add_option("name", name_, "Key name")->required();
    app.add_option("account", account_, "Account name")->required();
  }
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_TRY(remote->Call(ApiTarget(grant_ ? "keys/grant" : "keys/revoke"),
                            {{"name", name_}, {"account", account_}}));
    if (global.json) {
      PrintJson(json{{"key", name_}, {"account", account_}, {"granted", grant_}});
    } else if (grant_) {
      std::cout << "account '" << account_ << "' may now sign with key '" << name_ << "'\n";
    } else {
      std::cout << "account '" << account_ << "' may no longer sign with key '" << name_ << "'\n";
    }
    return OkStatus();
  }

 private:
  bool grant_;
  std::string name_;
  std::string account_;
};

class KeyGrantsCommand final : public Command {
 public:
  void Configure(CLI::App& app) override { app.add_option("name", name_, "Key name")->required(); }
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    SIGNET_ASSIGN_OR_RETURN(json answer, remote->Call(ApiTarget("keys/grants"), {{"name", name_}}));
    SIGNET_ASSIGN_OR_RETURN(const json* accounts, AnswerMember(answer, "accounts"));
    if (!accounts->is_array()) return UnexpectedAnswer("'accounts' is not an array");
    if (global.json) {
      PrintJson(*accounts);
      return OkStatus();
    }
    if (accounts->empty()) std::cout << "no account may sign with key '" << name_ << "'\n";
    for (const json& a : *accounts) {
      if (a.is_string()) std::cout << TerminalSafe(a.get<std::string>()) << "\n";
    }
    return OkStatus();
  }

 private:
  std::string name_;
};

class KeyPolicyCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("name", name_, "Key name")->required();
    app.add_flag("--set", set_, "Change the policy: only the fields given change");
    schemes_opt_ = app.add_option("--scheme", schemes_,
                                  "Allowed signature scheme: rsa-pkcs1, rsa-pss or ecdsa "
                                  "(repeat for several; replaces the list)");
    hashes_opt_ = app.add_option("--hash", hashes_,
                                 "Allowed hash: sha256, sha384 or sha512 (repeat for several; "
                                 "replaces the list)");
    max_opt_ = app.add_option("--max-signatures", max_signatures_,
                              "Most signatures one authorization (SAD) may make");
    rate_key_opt_ = app.add_option("--rate-key", rate_key_,
                                   "Signatures per minute with this key (0: no limit)");
    rate_account_opt_ = app.add_option("--rate-account", rate_account_,
                                       "Signatures per minute per account with this key (0: no "
                                       "limit)");
  }

  Status Run(const GlobalOptions& global) override {
    const bool any_field = schemes_opt_->count() > 0 || hashes_opt_->count() > 0 ||
                           max_opt_->count() > 0 || rate_key_opt_->count() > 0 ||
                           rate_account_opt_->count() > 0;
    if (any_field && !set_) return InvalidArgument("to change the policy, add --set");
    if (set_ && !any_field) {
      return InvalidArgument(
          "--set needs at least one of --scheme, --hash, --max-signatures, "
          "--rate-key, --rate-account");
    }
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    json answer;
    if (set_) {
      // Only the fields given are sent: the server keeps the others as they are when the change
      // commits, so a concurrent change of another field is not undone by a stale copy.
      json change = json::object();
      if (schemes_opt_->count() > 0) change["sign_schemes"] = schemes_;
      if (hashes_opt_->count() > 0) change["hash_algorithms"] = hashes_;
      if (max_opt_->count() > 0) change["max_signatures_per_authorization"] = max_signatures_;
      if (rate_key_opt_->count() > 0) change["rate_per_minute_key"] = rate_key_;
      if (rate_account_opt_->count() > 0) change["rate_per_minute_account"] = rate_account_;
      SIGNET_ASSIGN_OR_RETURN(answer, remote->Call(ApiTarget("keys/set-policy"),
                                                   {{"name", name_}, {"policy", change}}));
    } else {
      SIGNET_ASSIGN_OR_RETURN(answer, remote->Call(ApiTarget("keys/policy"), {{"name", name_}}));
    }
    SIGNET_ASSIGN_OR_RETURN(const json* returned, AnswerMember(answer, "policy"));
    if (!returned->is_object()) return UnexpectedAnswer("'policy' is not an object");
    const json policy = *returned;
    if (global.json) {
      PrintJson(policy);
    } else {
      std::cout << PolicyText(name_, policy);
    }
    return OkStatus();
  }

 private:
  std::string name_;
  bool set_ = false;
  std::vector<std::string> schemes_;
  std::vector<std::string> hashes_;
  int64_t max_signatures_ = 0;
  int64_t rate_key_ = 0;
  int64_t rate_account_ = 0;
  CLI::Option* schemes_opt_ = nullptr;
  CLI::Option* hashes_opt_ = nullptr;
  CLI::Option* max_opt_ = nullptr;
  CLI::Option* rate_key_opt_ = nullptr;
  CLI::Option* rate_account_opt_ = nullptr;
};

}  // namespace

std::vector<NamedCommand> RemoteCommands() {
  std::vector<NamedCommand> c;
  c.push_back({{"login"},
               "Log in to a signet server (--server URL; password and TOTP, or --client-cert "
               "for a service account) and keep the session",
               std::make_unique<LoginCommand>()});
  c.push_back({{"logout"},
               "Revoke the session's token and delete the session file",
               std::make_unique<LogoutCommand>()});
  c.push_back(
      {{"password"}, "Change your password on the server", std::make_unique<PasswordCommand>()});
  c.push_back({{"whoami"},
               "Show the logged-in account and its session",
               std::make_unique<WhoamiCommand>()});
  c.push_back({{"account", "create"},
               "Create an account (a person gets a one-time password and TOTP enrolment)",
               std::make_unique<AccountCreateCommand>()});
  c.push_back({{"account", "list"}, "List accounts", std::make_unique<AccountListCommand>()});
  c.push_back({{"account", "show"}, "Show an account", std::make_unique<AccountShowCommand>()});
  c.push_back({{"account", "disable"},
               "Disable an account (its tokens stop working)",
               std::make_unique<AccountChangeCommand>("accounts/disable", "is now disabled")});
  c.push_back({{"account", "enable"},
               "Enable a disabled account",
               std::make_unique<AccountChangeCommand>("accounts/enable", "is now active")});
  c.push_back({{"account", "unlock"},
               "Unlock an account locked after failed logins",
               std::make_unique<AccountChangeCommand>("accounts/unlock", "is unlocked")});
  c.push_back({{"account", "reset-totp"},
               "Give an account a new TOTP secret (shown once)",
               std::make_unique<AccountResetTotpCommand>()});
  c.push_back({{"account", "reset-password"},
               "Give a person a new one-time password (shown once) when theirs is lost",
               std::make_unique<AccountResetPasswordCommand>()});
  c.push_back({{"account", "roles"},
               "Set an account's roles (--role, repeatable)",
               std::make_unique<AccountRolesCommand>()});
  c.push_back({{"key", "grant"},
               "Allow an account to sign with a key",
               std::make_unique<KeyGrantCommand>(true)});
  c.push_back({{"key", "revoke"},
               "Withdraw an account's permission to sign with a key",
               std::make_unique<KeyGrantCommand>(false)});
  c.push_back({{"key", "grants"},
               "List the accounts that may sign with a key",
               std::make_unique<KeyGrantsCommand>()});
  c.push_back({{"key", "policy"},
               "Show a key's policy, or change it with --set (unspecified fields keep their "
               "values)",
               std::make_unique<KeyPolicyCommand>()});
  return c;
}

}  // namespace signet::cli
