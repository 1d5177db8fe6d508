// Rendering of records for people (aligned text) and scripts (JSON). Pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hsm/key_store.h"
#include "service/key_json.h"
#include "service/key_service.h"
#include "store/store.h"

namespace signet::cli {

// The key JSON is shared with the management API (server/api), so both print the same fields.
using service::KeyDetailsToJson;
using service::KeyToJson;
using service::PublicKeyPem;

nlohmann::json TokenToJson(const hsm::TokenDescription& token);

// Rows as aligned columns (two spaces between columns), one line each; the first row is the header.
std::string Table(const std::vector<std::vector<std::string>>& rows);
std::string KeyTable(const std::vector<store::KeyRecord>& keys);
std::string KeyDetailsText(const service::KeyDetails& details);

}  // namespace signet::cli
