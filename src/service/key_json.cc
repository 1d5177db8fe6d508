#include "service/key_json.h"

#include "common/clock.h"

namespace signet::service {

using nlohmann::json;

json KeyToJson(const store::KeyRecord& key) {
  return json{{"id", key.id},
              {"name", key.name},
              {"algorithm", key.algorithm},
              {"state", store::KeyStateName(key.state)},
              {"owner", key.owner},
              {"token_label", key.token_label},
              {"token_serial", key.token_serial},
              {"hsm_key_id", key.hsm_key_id},
              {"public_key_pem", PublicKeyPem(key.public_key_spki)},
              {"has_certificate", !key.certificate_chain_pem.empty()},
              {"certificate_chain_pem", key.certificate_chain_pem},
              {"created_at", FormatRfc3339(key.created_at)},
              {"updated_at", FormatRfc3339(key.updated_at)}};
}

json KeyDetailsToJson(const KeyDetails& d) {
  json j = KeyToJson(d.record);
  j["on_open_token"] = d.on_open_token;
  j["present_in_hsm"] = d.present_in_hsm;
  if (d.present_in_hsm) {
    j["public_key_matches_hsm"] = d.public_key_matches_hsm;
    j["protection"] = json{{"local", d.protection.local},
                           {"sensitive", d.protection.sensitive},
                           {"always_sensitive", d.protection.always_sensitive},
                           {"extractable", d.protection.extractable},
                           {"never_extractable", d.protection.never_extractable},
                           {"token_object", d.protection.is_token_object},
                           {"private_object", d.protection.is_private_object}};
  }
  return j;
}

std::string PublicKeyPem(const std::string& spki_base64) {
  std::string out = "-----BEGIN PUBLIC KEY-----\n";
  for (size_t i = 0; i < spki_base64.size(); i += 64) {
    out += spki_base64.substr(i, 64) + "\n";
  }
  out += "-----END PUBLIC KEY-----\n";
  return out;
}

nlohmann::json UnrecordedKeyToJson(const UnrecordedKey& key) {
  return nlohmann::json{
      {"hsm_key_id", key.hsm_key_id}, {"label", key.label}, {"algorithm", key.algorithm}};
}

}  // namespace signet::service
