// The JSON shape of a code-signing key, shared by the local CLI (`signet key list/show --json`)
// and the management API (`/api/v1/keys/...`, docs/api.md "Objects"), so both print the same
// fields. Pure functions of their arguments; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "service/key_service.h"
#include "store/store.h"

namespace signet::service {

// {"id", "name", "algorithm", "state", "owner", "token_label", "token_serial", "hsm_key_id",
//  "public_key_pem", "has_certificate", "certificate_chain_pem", "created_at", "updated_at"};
// times as RFC 3339 UTC.
nlohmann::json KeyToJson(const store::KeyRecord& key);

// KeyToJson of the record plus "present_in_hsm" and, while the key is in the HSM,
// "public_key_matches_hsm" and "protection" {"local", "sensitive", "always_sensitive",
// "extractable", "never_extractable", "token_object", "private_object"}.
nlohmann::json KeyDetailsToJson(const KeyDetails& details);

// {"hsm_key_id", "label", "algorithm"}: the management API's and `key unrecorded --json`'s form.
nlohmann::json UnrecordedKeyToJson(const UnrecordedKey& key);

// PEM "PUBLIC KEY" block of a base64 SubjectPublicKeyInfo, wrapped at 64 columns (RFC 7468 §13).
std::string PublicKeyPem(const std::string& spki_base64);

}  // namespace signet::service
