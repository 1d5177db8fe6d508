#include "cli/output.h"

#include <algorithm>

#include "common/text.h"

namespace signet::cli {

using nlohmann::json;

json TokenToJson(const hsm::TokenDescription& t) {
  return json{{"module", t.module_path}, {"label", t.label},
              {"serial", t.serial},      {"manufacturer", t.manufacturer},
              {"model", t.model},        {"firmware_version", t.firmware_version}};
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows.empty() ? 0 : rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size() && i < width.size()) out += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string KeyTable(const std::vector<store::KeyRecord>& keys) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "ALGORITHM", "STATE", "CERTIFICATE", "CREATED"});
  for (const auto& k : keys) {
    // The fields may come from a server's answer: escaped for the terminal (common/text.h).
    rows.push_back({TerminalSafe(k.name), TerminalSafe(k.algorithm),
                    std::string(store::KeyStateName(k.state)),
                    k.certificate_chain_pem.empty() ? "no" : "yes", FormatRfc3339(k.created_at)});
  }
  return Table(rows);
}

std::string KeyDetailsText(const service::KeyDetails& d) {
  const auto& k = d.record;
  auto yes = [](bool b) { return b ? "true" : "false"; };
  std::string out;
  // The fields may come from a server's answer: escaped for the terminal (common/text.h).
  out += "name:          " + TerminalSafe(k.name) + "\n";
  out += "id:            " + TerminalSafe(k.id) + "\n";
  out += "algorithm:     " + TerminalSafe(k.algorithm) + "\n";
  out += "state:         " + std::string(store::KeyStateName(k.state)) + "\n";
  out += "owner:         " + TerminalSafe(k.owner) + "\n";
  out += "token:         " + TerminalSafe(k.token_label) + " (serial " +
         TerminalSafe(k.token_serial) + ")\n";
  out += "hsm key id:    " + TerminalSafe(k.hsm_key_id) + "\n";
  out += "created:       " + FormatRfc3339(k.created_at) + "\n";
  out += "updated:       " + FormatRfc3339(k.updated_at) + "\n";
  out +=
      "certificate:   " + std::string(k.certificate_chain_pem.empty() ? "none" : "imported") + "\n";
  if (!d.on_open_token) {
    out += "in hsm:        not asked: the key is on another token than the one open\n";
  } else {
    out += "in hsm:        " + std::string(yes(d.present_in_hsm)) + "\n";
  }
  if (d.present_in_hsm) {
    const auto& p = d.protection;
    out += "protection:    local=" + std::string(yes(p.local)) + " sensitive=" + yes(p.sensitive) +
           " always_sensitive=" + yes(p.always_sensitive) + " extractable=" + yes(p.extractable) +
           " never_extractable=" + yes(p.never_extractable) + "\n";
    out += "public key:    " +
           std::string(d.public_key_matches_hsm ? "matches the HSM" : "DIFFERS FROM THE HSM") +
           "\n";
  }
  out += PublicKeyPem(k.public_key_spki);
  return out;
}

}  // namespace signet::cli
