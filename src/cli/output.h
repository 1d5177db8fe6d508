// Rendering of records for people (aligned text) and scripts (JSON). Pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hsm/key_store.h"
#include "service/key_service.h"
#include "store/store.h"

namespace signet::cli {

nlohmann::json KeyToJson(const store::KeyRecord& key);
nlohmann::json KeyDetailsToJson(const service::KeyDetails& details);
nlohmann::json TokenToJson(const hsm::TokenDescription& token);

std::string KeyTable(const std::vector<store::KeyRecord>& keys);
std::string KeyDetailsText(const service::KeyDetails& details);

// PEM "PUBLIC KEY" block of a base64 SubjectPublicKeyInfo, wrapped at 64 columns (RFC 7468 §13).
std::string PublicKeyPem(const std::string& spki_base64);

}  // namespace signet::cli
