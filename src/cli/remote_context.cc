#include "cli/remote_context.h"

#include <cstdint>
#include <cstdlib>
#include <limits>

#include "common/fs.h"

namespace signet::cli {
namespace {

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0';
}

}  // namespace

KeyTarget ChooseKeyTarget(bool server_given, bool data_dir_given, bool session_file_exists) {
  if (server_given) return KeyTarget::kRemote;
  if (!data_dir_given && session_file_exists) return KeyTarget::kRemote;
  return KeyTarget::kLocal;
}

KeyTarget ChooseKeyTarget(const GlobalOptions& global) {
  const bool server = !ServerFromOptions(global).empty();
  const bool data_dir = !global.data_dir.empty() || EnvSet(kEnvDataDir);
  bool session = false;
  if (!server && !data_dir) {
    auto path = DefaultSessionFilePath();
    session = path.ok() && fs::Exists(*path);
  }
  return ChooseKeyTarget(server, data_dir, session);
}

std::string NormalizeServerUrl(std::string_view url) {
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return std::string(url);
}

std::string ServerFromOptions(const GlobalOptions& global) {
  if (!global.server.empty()) return NormalizeServerUrl(global.server);
  const char* env = std::getenv(kEnvServer);
  return env != nullptr ? NormalizeServerUrl(env) : std::string();
}

client::ClientOptions ClientOptionsFor(const Session& session) {
  client::ClientOptions o;
  o.server_url = session.server_url;
  o.ca_file = session.ca_file;
  o.ca_pem = session.ca_certificates;
  o.client_certificate_file = session.client_certificate_file;
  o.client_private_key_file = session.client_private_key_file;
  return o;
}

Error UnexpectedAnswer(std::string_view what) {
  return InternalError("unexpected answer from the server: " + std::string(what));
}

Result<const nlohmann::json*> AnswerMember(const nlohmann::json& answer, const char* name) {
  if (!answer.is_object()) return UnexpectedAnswer("expected a JSON object");
  auto it = answer.find(name);
  if (it == answer.end()) return UnexpectedAnswer(std::string("no '") + name + "'");
  return &*it;
}

Result<std::string> AnswerString(const nlohmann::json& answer, const char* name) {
  SIGNET_ASSIGN_OR_RETURN(const nlohmann::json* v, AnswerMember(answer, name));
  if (!v->is_string()) return UnexpectedAnswer(std::string("'") + name + "' is not a string");
  return v->get<std::string>();
}

Result<bool> AnswerBool(const nlohmann::json& answer, const char* name) {
  SIGNET_ASSIGN_OR_RETURN(const nlohmann::json* v, AnswerMember(answer, name));
  if (!v->is_boolean()) return UnexpectedAnswer(std::string("'") + name + "' is not a boolean");
  return v->get<bool>();
}

Result<int64_t> AnswerInt(const nlohmann::json& answer, const char* name) {
  SIGNET_ASSIGN_OR_RETURN(const nlohmann::json* v, AnswerMember(answer, name));
  // An integer above INT64_MAX parses as unsigned, and get<int64_t>() would wrap it.
  if (!v->is_number_integer() ||
      (v->is_number_unsigned() &&
       v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return UnexpectedAnswer(std::string("'") + name + "' is not a 64-bit signed integer");
  }
  return v->get<int64_t>();
}

std::string ApiTarget(std::string_view route) { return "/api/v1/" + std::string(route); }

RemoteContext::RemoteContext(Session session, std::unique_ptr<client::HttpsClient> http)
    : session_(std::move(session)), http_(std::move(http)) {}

Result<std::unique_ptr<RemoteContext>> RemoteContext::Open(const GlobalOptions& global) {
  // The server chooses its own HSM token: flags that pick a local one would be ignored, and a
  // key meant for one token made on another.
  for (const auto& [flag, value] :
       {std::pair{"--module", &global.module_path}, std::pair{"--token-label", &global.token_label},
        std::pair{"--token-serial", &global.token_serial},
        std::pair{"--pin-file", &global.pin_file}}) {
    if (!value->empty()) {
      return InvalidArgument(std::string(flag) +
                             " chooses a local HSM token, but this command goes to the server "
                             "(a login session or --server), which uses its own; drop it, or "
                             "pass --data-dir to work on a local data folder");
    }
  }
  SIGNET_ASSIGN_OR_RETURN(std::string path, DefaultSessionFilePath());
  SystemClock clock;
  SIGNET_ASSIGN_OR_RETURN(Session session, LoadActiveSession(path, clock.Now()));
  const std::string wanted = ServerFromOptions(global);
  if (!wanted.empty() && wanted != NormalizeServerUrl(session.server_url)) {
    return FailedPrecondition("logged in to " + session.server_url + ", not " + wanted +
                              "; run 'signet login --server " + wanted + "'");
  }
  SIGNET_ASSIGN_OR_RETURN(auto http, client::HttpsClient::Create(ClientOptionsFor(session)));
  return std::make_unique<RemoteContext>(std::move(session), std::move(http));
}

Result<nlohmann::json> RemoteContext::Call(std::string_view target, const nlohmann::json& body) {
  auto answer = client::CallJson(*http_, target, body, session_.access_token.text_view());
  if (!answer.ok() && answer.error().code() == ErrorCode::kUnauthenticated) {
    return Unauthenticated(kSessionRevoked);
  }
  return answer;
}

Result<nlohmann::json> RemoteContext::CallWithSecrets(std::string_view target, std::string body) {
  // Built in place and moved in: no intermediate copy of the token is freed unwiped.
  std::string authorization;
  authorization.reserve(7 + session_.access_token.size());
  authorization.append("Bearer ").append(session_.access_token.text_view());
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("Authorization", std::move(authorization));
  auto answer = CallJsonWithSecrets(*http_, target, std::move(body), std::move(headers));
  if (!answer.ok() && answer.error().code() == ErrorCode::kUnauthenticated &&
      answer.error().message().ends_with("(invalid_token)")) {
    return Unauthenticated(kSessionRevoked);
  }
  return answer;
}

Result<nlohmann::json> CallJsonWithSecrets(
    client::HttpsClient& http, std::string_view target, std::string body,
    std::vector<std::pair<std::string, std::string>> headers) {
  client::HttpRequest request;
  request.target = std::string(target);
  request.body = std::move(body);
  request.headers = std::move(headers);
  auto response = http.Send(request);
  SecureWipe(request.body.data(), request.body.size());
  for (auto& [name, value] : request.headers) SecureWipe(value.data(), value.size());
  if (!response.ok()) return std::move(response).error();
  if (response->status < 200 || response->status > 299) {
    return client::ErrorFromResponse(*response);
  }
  if (response->body.empty()) return nlohmann::json::object();
  auto parsed = client::ParseJsonAnswer(response->body, target);
  SecureWipe(response->body.data(), response->body.size());  // a login answer holds a token
  return parsed;
}

}  // namespace signet::cli
