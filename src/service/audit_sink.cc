#include "service/audit_sink.h"

#include <array>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "common/encoding.h"

namespace signet::service {
namespace {

struct ActionEntry {
  AuditAction action;
  std::string_view name;
};

// One table for both directions, so a name cannot be added to one and forgotten in the other.
constexpr std::array kActions = {
    ActionEntry{AuditAction::kLoginSuccess, "login_success"},
    ActionEntry{AuditAction::kLoginFailure, "login_failure"},
    ActionEntry{AuditAction::kLockout, "lockout"},
    ActionEntry{AuditAction::kUnlock, "unlock"},
    ActionEntry{AuditAction::kTokenRevoke, "token_revoke"},
    ActionEntry{AuditAction::kAuthorize, "authorize"},
    ActionEntry{AuditAction::kAuthorizeRefused, "authorize_refused"},
    ActionEntry{AuditAction::kSign, "sign"},
    ActionEntry{AuditAction::kSignRefused, "sign_refused"},
    ActionEntry{AuditAction::kKeyCreate, "key_create"},
    ActionEntry{AuditAction::kKeyEnable, "key_enable"},
    ActionEntry{AuditAction::kKeyDisable, "key_disable"},
    ActionEntry{AuditAction::kKeyDestroy, "key_destroy"},
    ActionEntry{AuditAction::kKeyCsr, "key_csr"},
    ActionEntry{AuditAction::kKeyImportCert, "key_import_cert"},
    ActionEntry{AuditAction::kGrant, "grant"},
    ActionEntry{AuditAction::kRevokeGrant, "revoke_grant"},
    ActionEntry{AuditAction::kPolicyChange, "policy_change"},
    ActionEntry{AuditAction::kAccountCreate, "account_create"},
    ActionEntry{AuditAction::kAccountChange, "account_change"},
    ActionEntry{AuditAction::kAccountDisable, "account_disable"},
    ActionEntry{AuditAction::kAccountEnable, "account_enable"},
    ActionEntry{AuditAction::kAccountResetTotp, "account_reset_totp"},
    ActionEntry{AuditAction::kAccountRoles, "account_roles"},
    ActionEntry{AuditAction::kConfigStartup, "config_startup"},
    ActionEntry{AuditAction::kConfigChange, "config_change"},
    ActionEntry{AuditAction::kServiceStart, "service_start"},
    ActionEntry{AuditAction::kServiceStop, "service_stop"},
    ActionEntry{AuditAction::kLogCheckpoint, "log_checkpoint"},
    ActionEntry{AuditAction::kClockStep, "clock_step"},
};

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Cuts `text` to kMaxAuditFieldSize bytes (at a UTF-8 boundary) and says how long it was.
void Bound(std::string& text) {
  if (text.size() <= kMaxAuditFieldSize) return;
  size_t cut = kMaxAuditFieldSize;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  const size_t full = text.size();
  text.resize(cut);
  text += "...(cut, " + std::to_string(full) + " bytes)";
}

// The entry's render function: `body` plus "index", dumped canonically. nlohmann's default object
// keeps keys sorted, so the result is canonical whatever the order of insertion.
std::function<Result<std::string>(int64_t)> Renderer(nlohmann::json body) {
  return [body = std::move(body)](int64_t index) -> Result<std::string> {
    try {
      nlohmann::json j = body;
      j["index"] = index;
      return Dump(j);
    } catch (const std::exception& e) {
      return InternalError(std::string("cannot serialise audit entry: ") + e.what());
    }
  };
}

}  // namespace

std::string_view AuthMethodName(AuthMethod method) {
  switch (method) {
    case AuthMethod::kPasswordTotp:
      return "password+totp";
    case AuthMethod::kMtls:
      return "mtls";
    case AuthMethod::kLocalCli:
      return "local-cli";
    case AuthMethod::kSystem:
      return "system";
    case AuthMethod::kNone:
      return "none";
  }
  return "unknown";
}

std::string_view AuditActionName(AuditAction action) {
  for (const ActionEntry& e : kActions) {
    if (e.action == action) return e.name;
  }
  return "unknown";
}

Result<AuditAction> ParseAuditAction(std::string_view name) {
  for (const ActionEntry& e : kActions) {
    if (e.name == name) return e.action;
  }
  return InvalidArgument("unknown audit action '" + std::string(name) + "'");
}

nlohmann::json ToJson(const AuditEvent& event) {
  nlohmann::json roles = nlohmann::json::array();
  for (store::Role r : {store::Role::kAdmin, store::Role::kSigner, store::Role::kAuditor}) {
    if (event.actor.roles.Has(r)) roles.push_back(std::string(store::RoleName(r)));
  }
  nlohmann::json j = {
      {"time", FormatRfc3339(event.time)},
      {"time_unix", ToUnixSeconds(event.time)},
      {"action", std::string(AuditActionName(event.action))},
      {"actor",
       {{"account_id", event.actor.account_id},
        {"account_name", event.actor.account_name},
        {"auth_method", std::string(AuthMethodName(event.actor.auth_method))},
        {"client_address", event.actor.client_address},
        {"roles", std::move(roles)}}},
      {"object", event.object},
      {"outcome", event.outcome},
      {"request_id", event.request_id},
      {"details", nlohmann::json::object()},
  };
  for (const auto& [k, v] : event.details) j["details"][k] = v;
  if (event.signature.has_value()) {
    const SignatureAudit& s = *event.signature;
    j["signature"] = {{"key_id", s.key_id},
                      {"key_name", s.key_name},
                      {"algorithm", s.algorithm},
                      {"hash_algorithm", s.hash_algorithm},
                      {"hashes", s.hashes}};
  }
  return j;
}

std::string ToCanonicalJson(const AuditEvent& event) { return Dump(ToJson(event)); }

LogAppendFn DirectLogAppender(store::Store& store) {
  return [&store](std::vector<store::LogEntryAppend> entries) {
    return store.AppendLogEntries(entries);
  };
}

std::vector<store::LogEntryAppend> ToLogEntries(const AuditEvent& original) {
  AuditEvent event = original;
  // Every string a client can reach is cut: the outcome is often an error message quoting what
  // the client sent (a 70 KB credentialID), and an entry over the limit would not be recorded at
  // all, so a refusal could be kept out of the log by the very request it refuses.
  Bound(event.object);
  Bound(event.outcome);
  Bound(event.request_id);
  Bound(event.actor.account_name);
  Bound(event.actor.client_address);
  for (auto& [k, v] : event.details) Bound(v);

  std::string key_id;
  if (event.signature.has_value()) {
    key_id = event.signature->key_id;
    Bound(event.signature->key_id);
    Bound(event.signature->key_name);
    Bound(event.signature->algorithm);
    Bound(event.signature->hash_algorithm);
    for (std::string& hash : event.signature->hashes) Bound(hash);
  } else if (auto it = event.details.find("key_id"); it != event.details.end()) {
    key_id = it->second;
  }
  Bound(key_id);
  auto entry = [&](nlohmann::json body) {
    return store::LogEntryAppend{event.time,
                                 std::string(AuditActionName(event.action)),
                                 key_id,
                                 event.actor.account_id,
                                 Renderer(std::move(body)),
                                 nullptr};
  };

  nlohmann::json j = ToJson(event);
  // Room for "index":<up to 19 digits> and the part counters.
  constexpr size_t kReserve = 128;
  const size_t whole = Dump(j).size();
  if (!event.signature.has_value() || whole + kReserve <= store::kMaxLogEntrySize) {
    return {entry(std::move(j))};
  }

  // Split the hashes: every part repeats the rest of the event, so each entry stands alone.
  const std::vector<std::string>& hashes = event.signature->hashes;
  j["signature"]["hashes"] = nlohmann::json::array();
  const size_t base = Dump(j).size() + kReserve;
  std::vector<store::LogEntryAppend> out;
  size_t i = 0;
  std::vector<std::pair<size_t, size_t>> slices;  // [begin, end) of each part
  while (i < hashes.size()) {
    size_t used = base;
    size_t end = i;
    // At least one hash per part; a single hash never exceeds the bound (it is hex of a digest).
    while (end < hashes.size() &&
           (end == i || used + hashes[end].size() + 3 <= store::kMaxLogEntrySize)) {
      used += hashes[end].size() + 3;  // quotes and comma
      ++end;
    }
    slices.emplace_back(i, end);
    i = end;
  }
  for (size_t p = 0; p < slices.size(); ++p) {
    nlohmann::json part = j;
    nlohmann::json& sig = part["signature"];
    sig["hashes"] =
        std::vector<std::string>(hashes.begin() + static_cast<ptrdiff_t>(slices[p].first),
                                 hashes.begin() + static_cast<ptrdiff_t>(slices[p].second));
    sig["hashes_part"] = p + 1;
    sig["hashes_parts"] = slices.size();
    sig["hashes_total"] = hashes.size();
    out.push_back(entry(std::move(part)));
  }
  return out;
}

Result<std::string> RenderCheckpointEntry(int64_t index, const store::LogCheckpointRow& checkpoint,
                                          std::string_view origin) {
  AuditEvent event;
  event.time = checkpoint.time;
  event.action = AuditAction::kLogCheckpoint;
  event.actor.auth_method = AuthMethod::kSystem;
  event.object = std::string(origin);
  event.details["checkpoint"] = checkpoint.note;
  event.details["root"] = Base64Encode(checkpoint.root);
  event.details["size"] = std::to_string(checkpoint.size);
  return Renderer(ToJson(event))(index);
}

Status LogAuditSink::Record(const AuditEvent& event) {
  std::vector<store::LogEntryAppend> entries;
  try {
    entries = ToLogEntries(event);
  } catch (const std::exception& e) {
    // nlohmann reports errors as exceptions; none is expected with the replace handler, but none
    // may cross the component boundary either.
    return InternalError(std::string("cannot serialise audit event: ") + e.what());
  }
  auto seq = append_(std::move(entries));
  if (!seq.ok()) {
    return seq.error().WithContext("cannot record audit event '" +
                                   std::string(AuditActionName(event.action)) + "'");
  }
  return OkStatus();
}

Status LogAuditSink::RecordChange(const AuditEvent& event, const AuditedChange& change) {
  const std::string what =
      "cannot record audit event '" + std::string(AuditActionName(event.action)) + "'";
  if (event.signature.has_value()) {
    return InvalidArgument(what + ": a change's event carries no signature");
  }
  if (!change) return InvalidArgument(what + ": no change given");
  // The apply fills `added`; the render, which the store runs after it in the same transaction,
  // renders the event with them. Both closures hold the state through a shared pointer, since
  // the entry (and with it the closures) is moved through the append function.
  struct Pending {
    AuditEvent event;
    AuditedChange change;
    std::map<std::string, std::string> added;
    std::optional<Error> refused;  // the change's own error, from its last attempt
  };
  auto pending = std::make_shared<Pending>(Pending{event, change, {}, std::nullopt});
  store::LogEntryAppend entry;
  try {
    std::vector<store::LogEntryAppend> entries = ToLogEntries(event);
    if (entries.size() != 1) return InternalError(what + ": the event does not fit one entry");
    entry = std::move(entries.front());
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot serialise audit event: ") + e.what());
  }
  entry.apply = [pending](store::Store&) -> Status {
    pending->added.clear();  // a retried attempt starts again
    pending->refused.reset();
    Status changed = pending->change(pending->added);
    if (!changed.ok()) pending->refused = changed.error();
    return changed;
  };
  entry.render = [pending](int64_t index) -> Result<std::string> {
    AuditEvent recorded = pending->event;
    for (const auto& [k, v] : pending->added) recorded.details[k] = v;
    try {
      std::vector<store::LogEntryAppend> entries = ToLogEntries(recorded);
      if (entries.size() != 1) return InternalError("the event does not fit one entry");
      return entries.front().render(index);
    } catch (const std::exception& e) {
      return InternalError(std::string("cannot serialise audit event: ") + e.what());
    }
  };
  auto seq = append_({std::move(entry)});
  if (seq.ok()) return OkStatus();
  // A refused change is the caller's answer, in its own words; anything else (a store failure
  // met by the change included) is the log's.
  if (pending->refused && IsRefusal(*pending->refused)) return *pending->refused;
  return seq.error().WithContext(what);
}

Status LogAuditSink::RecordIf(const AuditEvent& event, const AuditCheck& check) {
  const std::string what =
      "cannot record audit event '" + std::string(AuditActionName(event.action)) + "'";
  if (!check) return InvalidArgument(what + ": no check given");
  std::vector<store::LogEntryAppend> entries;
  try {
    entries = ToLogEntries(event);
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot serialise audit event: ") + e.what());
  }
  if (entries.empty()) return InternalError(what + ": the event gave no entry");
  // The check rides on the first entry as its (read-only) change: the store runs it in the
  // append's transaction, and an error from it fails the whole append, all entries.
  auto refused = std::make_shared<std::optional<Error>>();  // the check's error, last attempt
  entries.front().apply = [check, refused](store::Store&) -> Status {
    refused->reset();
    Status passed = check();
    if (!passed.ok()) *refused = passed.error();
    return passed;
  };
  auto seq = append_(std::move(entries));
  if (seq.ok()) return OkStatus();
  if (*refused && IsRefusal(**refused)) return **refused;
  return seq.error().WithContext(what);
}

bool IsRefusal(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kPermissionDenied:
    case ErrorCode::kUnauthenticated:
      return true;
    default:
      return false;
  }
}

}  // namespace signet::service
