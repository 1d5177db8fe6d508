// The management API's key routes (docs/api.md "keys/...") behind the KeyBackend interface, and
// the conversion of its Key objects back into the records the local commands print.
#include <chrono>

#include "cli/key_backend.h"
#include "cli/remote_context.h"
#include "common/encoding.h"
#include "common/text.h"

namespace signet::cli {
namespace {

using nlohmann::json;

Error BadAnswer(std::string_view what) { return UnexpectedAnswer(what); }

Result<const json*> Member(const json& j, const char* name) { return AnswerMember(j, name); }
Result<std::string> StringMember(const json& j, const char* name) { return AnswerString(j, name); }
Result<bool> BoolMember(const json& j, const char* name) { return AnswerBool(j, name); }

Result<TimePoint> TimeMember(const json& j, const char* name) {
  SIGNET_ASSIGN_OR_RETURN(std::string text, StringMember(j, name));
  std::optional<TimePoint> t = ParseRfc3339(text);
  if (!t) {
    return BadAnswer(std::string("'") + name + "': '" + text +
                     "' is not a UTC time like 2026-11-22T13:23:21Z");
  }
  return *t;
}

// The base64 body of a "PUBLIC KEY" PEM block (what KeyRecord::public_key_spki holds).
Result<std::string> SpkiBase64FromPem(std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----";
  constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
  size_t begin = pem.find(kBegin);
  size_t end = pem.find(kEnd);
  if (begin == std::string_view::npos || end == std::string_view::npos ||
      end < begin + kBegin.size()) {
    return BadAnswer("'public_key_pem' is not a PUBLIC KEY block");
  }
  std::string out;
  for (char c : pem.substr(begin + kBegin.size(), end - begin - kBegin.size())) {
    if (c != '\n' && c != '\r') out += c;
  }
  // Printed as PEM by key show: base64 and nothing else (no escape sequence for the terminal).
  if (!Base64Decode(out).ok()) return BadAnswer("'public_key_pem' does not hold base64");
  return out;
}

// PEM text as `key show` prints it: printable ASCII lines only.
Result<std::string> PemText(const json& j, const char* name) {
  SIGNET_ASSIGN_OR_RETURN(std::string pem, StringMember(j, name));
  for (char c : pem) {
    if ((c < 0x20 || c > 0x7e) && c != '\n' && c != '\r') {
      return BadAnswer("'" + std::string(name) + "' holds a character that PEM text does not");
    }
  }
  return pem;
}

// The key object inside an answer like {"key": Key}.
Result<store::KeyRecord> KeyFromAnswer(const json& answer) {
  SIGNET_ASSIGN_OR_RETURN(const json* key, Member(answer, "key"));
  return KeyRecordFromJson(*key);
}

class RemoteKeyBackend final : public KeyBackend {
 public:
  explicit RemoteKeyBackend(std::unique_ptr<RemoteContext> remote) : remote_(std::move(remote)) {}

  Result<store::KeyRecord> CreateKey(const std::string& name, KeyAlgorithm alg) override {
    SIGNET_ASSIGN_OR_RETURN(
        json answer, Call("keys/create", {{"name", name}, {"algorithm", KeyAlgorithmName(alg)}}));
    return KeyFromAnswer(answer);
  }

  Result<std::vector<store::KeyRecord>> ListKeys() override {
    SIGNET_ASSIGN_OR_RETURN(json answer, Call("keys/list", json::object()));
    SIGNET_ASSIGN_OR_RETURN(const json* keys, Member(answer, "keys"));
    if (!keys->is_array()) return BadAnswer("'keys' is not an array");
    std::vector<store::KeyRecord> out;
    for (const json& k : *keys) {
      SIGNET_ASSIGN_OR_RETURN(store::KeyRecord r, KeyRecordFromJson(k));
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<service::KeyDetails> ShowKey(const std::string& name) override {
    SIGNET_ASSIGN_OR_RETURN(json answer, Call("keys/show", {{"name", name}}));
    SIGNET_ASSIGN_OR_RETURN(const json* key, Member(answer, "key"));
    return KeyDetailsFromJson(*key);
  }

  Result<store::KeyRecord> DisableKey(const std::string& name) override {
    return NamedKeyCall("keys/disable", name);
  }
  Result<store::KeyRecord> EnableKey(const std::string& name) override {
    return NamedKeyCall("keys/enable", name);
  }
  Result<store::KeyRecord> DestroyKey(const std::string& name) override {
    return NamedKeyCall("keys/destroy", name);
  }

  Status CheckKeyExists(const std::string& name) override {
    SIGNET_TRY(Call("keys/show", {{"name", name}}));
    return OkStatus();
  }

  Result<std::string> CreateCsr(const std::string& name, const std::string& subject) override {
    SIGNET_ASSIGN_OR_RETURN(json answer, Call("keys/csr", {{"name", name}, {"subject", subject}}));
    SIGNET_ASSIGN_OR_RETURN(std::string pem, StringMember(answer, "csr_pem"));
    // Written to the terminal or a file as it is: PEM text only.
    if (!pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----")) {
      return BadAnswer("'csr_pem' is not a PEM CERTIFICATE REQUEST block");
    }
    for (char c : pem) {
      if ((c < 0x20 || c > 0x7e) && c != '\n' && c != '\r') {
        return BadAnswer("'csr_pem' holds a character that PEM text does not");
      }
    }
    return pem;
  }

  Result<store::KeyRecord> ImportCertificateChain(const std::string& name,
                                                  const std::string& chain_pem) override {
    SIGNET_ASSIGN_OR_RETURN(json answer,
                            Call("keys/import-chain", {{"name", name}, {"chain_pem", chain_pem}}));
    return KeyFromAnswer(answer);
  }

  Result<std::vector<service::UnrecordedKey>> ListUnrecordedKeys() override {
    SIGNET_ASSIGN_OR_RETURN(json answer, Call("keys/unrecorded", json::object()));
    SIGNET_ASSIGN_OR_RETURN(const json* keys, Member(answer, "unrecorded_keys"));
    if (!keys->is_array()) return BadAnswer("'unrecorded_keys' is not an array");
    std::vector<service::UnrecordedKey> out;
    for (const json& k : *keys) {
      SIGNET_ASSIGN_OR_RETURN(service::UnrecordedKey key, UnrecordedKeyFromJson(k));
      out.push_back(std::move(key));
    }
    return out;
  }

  Result<service::UnrecordedKey> DestroyUnrecordedKey(const std::string& hsm_key_id) override {
    SIGNET_ASSIGN_OR_RETURN(json answer,
                            Call("keys/destroy-unrecorded", {{"hsm_key_id", hsm_key_id}}));
    SIGNET_ASSIGN_OR_RETURN(const json* key, Member(answer, "destroyed"));
    return UnrecordedKeyFromJson(*key);
  }

 private:
  Result<json> Call(std::string_view route, const json& body) {
    return remote_->Call(ApiTarget(route), body);
  }
  Result<store::KeyRecord> NamedKeyCall(std::string_view route, const std::string& name) {
    SIGNET_ASSIGN_OR_RETURN(json answer, Call(route, {{"name", name}}));
    return KeyFromAnswer(answer);
  }

  std::unique_ptr<RemoteContext> remote_;
};

}  // namespace

std::unique_ptr<KeyBackend> MakeRemoteKeyBackend(std::unique_ptr<RemoteContext> remote) {
  return std::make_unique<RemoteKeyBackend>(std::move(remote));
}

Result<store::KeyRecord> KeyRecordFromJson(const json& j) {
  store::KeyRecord r;
  SIGNET_ASSIGN_OR_RETURN(r.id, StringMember(j, "id"));
  SIGNET_ASSIGN_OR_RETURN(r.name, StringMember(j, "name"));
  SIGNET_ASSIGN_OR_RETURN(r.algorithm, StringMember(j, "algorithm"));
  SIGNET_ASSIGN_OR_RETURN(std::string state, StringMember(j, "state"));
  auto parsed_state = store::ParseKeyState(state);
  if (!parsed_state.ok()) return BadAnswer(parsed_state.error().message());
  r.state = *parsed_state;
  SIGNET_ASSIGN_OR_RETURN(r.owner, StringMember(j, "owner"));
  SIGNET_ASSIGN_OR_RETURN(r.token_label, StringMember(j, "token_label"));
  SIGNET_ASSIGN_OR_RETURN(r.token_serial, StringMember(j, "token_serial"));
  SIGNET_ASSIGN_OR_RETURN(r.hsm_key_id, StringMember(j, "hsm_key_id"));
  SIGNET_ASSIGN_OR_RETURN(std::string pem, StringMember(j, "public_key_pem"));
  SIGNET_ASSIGN_OR_RETURN(r.public_key_spki, SpkiBase64FromPem(pem));
  SIGNET_ASSIGN_OR_RETURN(r.certificate_chain_pem, PemText(j, "certificate_chain_pem"));
  SIGNET_ASSIGN_OR_RETURN(r.created_at, TimeMember(j, "created_at"));
  SIGNET_ASSIGN_OR_RETURN(r.updated_at, TimeMember(j, "updated_at"));
  // Printed to a terminal by every key command: a server's text must not carry control
  // characters there.
  for (std::string* text :
       {&r.id, &r.name, &r.algorithm, &r.owner, &r.token_label, &r.token_serial, &r.hsm_key_id}) {
    *text = OneLineSafe(*text, 256);
  }
  return r;
}

Result<service::UnrecordedKey> UnrecordedKeyFromJson(const json& j) {
  service::UnrecordedKey k;
  SIGNET_ASSIGN_OR_RETURN(k.hsm_key_id, StringMember(j, "hsm_key_id"));
  SIGNET_ASSIGN_OR_RETURN(k.label, StringMember(j, "label"));
  SIGNET_ASSIGN_OR_RETURN(k.algorithm, StringMember(j, "algorithm"));
  // Printed to a terminal: a server's text must not carry control characters there.
  k.label = OneLineSafe(k.label, 256);
  k.hsm_key_id = OneLineSafe(k.hsm_key_id, 256);
  k.algorithm = OneLineSafe(k.algorithm, 64);
  return k;
}

Result<service::KeyDetails> KeyDetailsFromJson(const json& j) {
  service::KeyDetails d;
  SIGNET_ASSIGN_OR_RETURN(d.record, KeyRecordFromJson(j));
  // Servers before on_open_token did not send it: their keys were always taken to be on the
  // open token.
  if (j.contains("on_open_token")) {
    SIGNET_ASSIGN_OR_RETURN(d.on_open_token, BoolMember(j, "on_open_token"));
  }
  SIGNET_ASSIGN_OR_RETURN(d.present_in_hsm, BoolMember(j, "present_in_hsm"));
  if (!d.present_in_hsm) return d;
  SIGNET_ASSIGN_OR_RETURN(d.public_key_matches_hsm, BoolMember(j, "public_key_matches_hsm"));
  SIGNET_ASSIGN_OR_RETURN(const json* p, Member(j, "protection"));
  auto& prot = d.protection;
  SIGNET_ASSIGN_OR_RETURN(prot.local, BoolMember(*p, "local"));
  SIGNET_ASSIGN_OR_RETURN(prot.sensitive, BoolMember(*p, "sensitive"));
  SIGNET_ASSIGN_OR_RETURN(prot.always_sensitive, BoolMember(*p, "always_sensitive"));
  SIGNET_ASSIGN_OR_RETURN(prot.extractable, BoolMember(*p, "extractable"));
  SIGNET_ASSIGN_OR_RETURN(prot.never_extractable, BoolMember(*p, "never_extractable"));
  SIGNET_ASSIGN_OR_RETURN(prot.is_token_object, BoolMember(*p, "token_object"));
  SIGNET_ASSIGN_OR_RETURN(prot.is_private_object, BoolMember(*p, "private_object"));
  return d;
}

}  // namespace signet::cli
