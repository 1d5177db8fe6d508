// How a `signet` command reaches a signet server: the rule that tells a remote `key` command from
// a local one, and the connection a remote command uses (the saved session's server, CA, token).
//
// The rule for `signet key ...` (also shown by `signet --help`):
//   remote  when --server URL or SIGNET_SERVER is given, or when neither --data-dir nor
//           SIGNET_DATA_DIR is given and a session file exists (`signet login` was run);
//   local   otherwise, on the data folder, exactly as without a server.
// Commands that exist only remotely (account, key grant/revoke/grants/policy, password, whoami)
// always use the session.
//
// Not thread-safe: one RemoteContext per command.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/command.h"
#include "cli/remote_session.h"
#include "client/client.h"
#include "common/clock.h"

namespace signet::cli {

inline constexpr char kEnvServer[] = "SIGNET_SERVER";
inline constexpr char kEnvDataDir[] = "SIGNET_DATA_DIR";

enum class KeyTarget { kLocal, kRemote };

// The rule above, as a pure function of what was given.
KeyTarget ChooseKeyTarget(bool server_given, bool data_dir_given, bool session_file_exists);

// The rule applied to `global` and this process's environment and session file.
KeyTarget ChooseKeyTarget(const GlobalOptions& global);

// --server, else SIGNET_SERVER, else empty; without a trailing '/'.
std::string ServerFromOptions(const GlobalOptions& global);

// "https://h:p/" and "https://h:p" name the same server.
std::string NormalizeServerUrl(std::string_view url);

// Client options for a server: CA file and optional mTLS identity.
client::ClientOptions ClientOptionsFor(const Session& session);

// The one message for a bearer token the server no longer accepts.
inline constexpr char kSessionRevoked[] = "session expired or revoked; run 'signet login'";

// A connection for a logged-in command.
class RemoteContext {
 public:
  // Loads the active session (Unauthenticated "not logged in; ..." / "session expired; ..."),
  // checks that --server/SIGNET_SERVER, if given, names the session's server (FailedPrecondition
  // otherwise), and prepares the HTTPS client (no connection yet).
  static Result<std::unique_ptr<RemoteContext>> Open(const GlobalOptions& global);

  // POSTs `body` to `target` with the session's token and returns the JSON answer. Server errors
  // keep their signet ErrorCode (client::CallJson); a 401 becomes kSessionRevoked.
  Result<nlohmann::json> Call(std::string_view target, const nlohmann::json& body);

  // Call for a body that carries secrets (a password change): `body` is wiped after sending. A
  // 401 becomes kSessionRevoked only when the server blames the token (invalid_token), so a wrong
  // password keeps the server's own message.
  Result<nlohmann::json> CallWithSecrets(std::string_view target, std::string body);

  client::HttpsClient& http() { return *http_; }

  const Session& session() const { return session_; }

  RemoteContext(Session session, std::unique_ptr<client::HttpsClient> http);

 private:
  Session session_;
  std::unique_ptr<client::HttpsClient> http_;
};

// client::CallJson, but for a body that carries secrets: `body` and the extra headers are wiped
// after sending. A 2xx answer returns its JSON ({} when empty); others become Errors as in
// client::CallJson.
Result<nlohmann::json> CallJsonWithSecrets(
    client::HttpsClient& http, std::string_view target, std::string body,
    std::vector<std::pair<std::string, std::string>> headers);

// Reading the server's answers: the member `name` of the object `answer`; Internal
// ("unexpected answer from the server: ...") when missing or of another type.
Result<const nlohmann::json*> AnswerMember(const nlohmann::json& answer, const char* name);
Result<std::string> AnswerString(const nlohmann::json& answer, const char* name);
Result<bool> AnswerBool(const nlohmann::json& answer, const char* name);
Result<int64_t> AnswerInt(const nlohmann::json& answer, const char* name);
Error UnexpectedAnswer(std::string_view what);

// The management API route `route` ("keys/list") as a request target ("/api/v1/keys/list").
std::string ApiTarget(std::string_view route);

}  // namespace signet::cli
