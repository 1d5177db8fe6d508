#include "store/store.h"

#include <string>

namespace signet::store {

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kActive:
      return "active";
    case KeyState::kDisabled:
      return "disabled";
    case KeyState::kDestroyed:
      return "destroyed";
  }
  return "unknown";
}

Result<KeyState> ParseKeyState(std::string_view name) {
  if (name == "active") return KeyState::kActive;
  if (name == "disabled") return KeyState::kDisabled;
  if (name == "destroyed") return KeyState::kDestroyed;
  return InvalidArgument("unknown key state '" + std::string(name) +
                         "': expected active, disabled or destroyed");
}

}  // namespace signet::store

// ---- accounts and bearer tokens (migration 2) ----

namespace signet::store {

std::string_view AccountKindName(AccountKind kind) {
  return kind == AccountKind::kService ? "service" : "person";
}

Result<AccountKind> ParseAccountKind(std::string_view name) {
  if (name == "person") return AccountKind::kPerson;
  if (name == "service") return AccountKind::kService;
  return InvalidArgument("unknown account kind '" + std::string(name) +
                         "': expected person or service");
}

std::string_view AccountStateName(AccountState state) {
  return state == AccountState::kDisabled ? "disabled" : "active";
}

Result<AccountState> ParseAccountState(std::string_view name) {
  if (name == "active") return AccountState::kActive;
  if (name == "disabled") return AccountState::kDisabled;
  return InvalidArgument("unknown account state '" + std::string(name) +
                         "': expected active or disabled");
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kSigner:
      return "signer";
    case Role::kAuditor:
      return "auditor";
  }
  return "unknown";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "signer") return Role::kSigner;
  if (name == "auditor") return Role::kAuditor;
  return InvalidArgument("unknown role '" + std::string(name) +
                         "': expected admin, signer or auditor");
}

std::string RoleSet::ToString() const {
  std::string out;
  for (Role role : {Role::kAdmin, Role::kSigner, Role::kAuditor}) {
    if (!Has(role)) continue;
    if (!out.empty()) out += ',';
    out += RoleName(role);
  }
  return out;
}

Result<RoleSet> RoleSet::Parse(std::string_view text) {
  RoleSet roles;
  if (text.empty()) return roles;
  int last = -1;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string_view part = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    SIGNET_ASSIGN_OR_RETURN(Role role, ParseRole(part));
    if (static_cast<int>(role) <= last) {
      return InvalidArgument("roles '" + std::string(text) +
                             "' are repeated or not in the order admin,signer,auditor");
    }
    last = static_cast<int>(role);
    roles.Add(role);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return roles;
}

}  // namespace signet::store

// ---- end of accounts and bearer tokens ----

// ---- activations, grants, policies, audit events (migration 3) ----

#include <algorithm>
#include <set>

#include "common/encoding.h"

namespace signet::store {
namespace {

// A hash as a message shows it: its first 16 hex digits, enough to find it in the client's list.
std::string ShortHex(ByteView hash) {
  std::string hex = HexEncode(hash);
  return hex.size() > 16 ? hex.substr(0, 16) + "..." : hex;
}

Status CheckRate(int64_t counted, int64_t requested, int64_t limit, std::string_view what) {
  if (limit <= 0 || counted + requested <= limit) return OkStatus();
  if (requested > limit) {
    // No minute would ever have room: waiting does not help, a smaller request does.
    return PermissionDenied("this request asks for " + std::to_string(requested) +
                            " signatures, but at most " + std::to_string(limit) +
                            " per minute are allowed " + std::string(what) +
                            "; send at most that many hashes per request");
  }
  return ResourceExhausted(std::string(kRateLimitMessage) + std::to_string(limit) +
                           " signatures per minute " + std::string(what) + " reached (" +
                           std::to_string(counted) + " used this minute, " +
                           std::to_string(requested) + " requested); retry in the next minute");
}

}  // namespace

int64_t RateMinute(TimePoint t) {
  int64_t s = ToUnixSeconds(t);
  return s >= 0 ? s / 60 : (s - 59) / 60;
}

Status CheckActivationBinding(const std::optional<ActivationRecord>& activation,
                              std::string_view account_id, std::string_view key_id, TimePoint now) {
  if (!activation.has_value()) {
    return Unauthenticated(std::string(kSadNotValidMessage));
  }
  if (activation->account_id != account_id) {
    return Unauthenticated(std::string(kSadOfAnotherAccountMessage) + ", not to '" +
                           std::string(account_id) + "'");
  }
  if (activation->key_id != key_id) {
    return Unauthenticated("the SAD was issued for another credential, not for '" +
                           std::string(key_id) + "'");
  }
  if (now >= activation->expires_at) return Unauthenticated(std::string(kSadExpiredMessage));
  return OkStatus();
}

Result<ActivationRecord> ContinueTransaction(const ActivationRecord& old,
                                             const ActivationRecord& replacement,
                                             int64_t max_transaction_signatures) {
  if (max_transaction_signatures <= 0) {
    return InvalidArgument("a transaction needs a positive signature limit");
  }
  if (replacement.num_signatures <= 0 || replacement.signatures_used != 0) {
    return InvalidArgument("an extension carries the count of its own hashes, none used yet");
  }
  if (replacement.account_id != old.account_id || replacement.key_id != old.key_id) {
    // An extension continues its own transaction; it never moves the signatures left in it to
    // another account or key.
    return InvalidArgument("an extension must be for the account and key of the SAD it replaces");
  }
  const int64_t total = old.num_signatures + replacement.num_signatures;
  if (total > max_transaction_signatures) {
    return PermissionDenied(
        "extending the transaction by " + std::to_string(replacement.num_signatures) +
        " signatures would bring it to " + std::to_string(total) + " (" +
        std::to_string(old.num_signatures) + " authorized so far); at most " +
        std::to_string(max_transaction_signatures) +
        " are allowed per authorization, extensions included; authorize again");
  }
  ActivationRecord next = replacement;
  next.num_signatures = total;
  next.signatures_used = old.signatures_used;
  next.created_at = old.created_at;  // the transaction's start, whatever the caller passed
  return next;
}

namespace {

// The rules before the per-hash ones, in CheckActivationConsumable's order.
Status CheckActivationHead(const std::optional<ActivationRecord>& activation,
                           const ConsumeActivationRequest& request) {
  SIGNET_TRY(CheckActivationBinding(activation, request.account_id, request.key_id, request.now));
  const ActivationRecord& a = *activation;
  if (a.hash_algorithm != request.hash_algorithm) {
    // CSC's invalid_hash: no hash of this algorithm is one the SAD lists.
    return PermissionDenied(std::string(kHashNotAuthorizedMessage) + ": it authorizes " +
                            a.hash_algorithm + " hashes, not " + request.hash_algorithm);
  }
  if (request.hashes.empty()) return InvalidArgument("no hashes to sign");
  std::set<Bytes> seen;
  for (const Bytes& h : request.hashes) {
    if (!seen.insert(h).second) {
      return InvalidArgument("hash " + ShortHex(h) + " is listed twice in the request");
    }
  }
  const int64_t requested = static_cast<int64_t>(request.hashes.size());
  const int64_t left = a.num_signatures - a.signatures_used;
  if (requested > left) {
    return PermissionDenied("more signatures than authorized: " + std::to_string(requested) +
                            " requested, " + std::to_string(left > 0 ? left : 0) + " of the " +
                            std::to_string(a.num_signatures) +
                            " this SAD's transaction allows are left");
  }
  return OkStatus();
}

// The rules after the per-hash ones.
Status CheckActivationRates(const ConsumeActivationRequest& request,
                            const SignatureCounts& counts) {
  const int64_t requested = static_cast<int64_t>(request.hashes.size());
  SIGNET_TRY(CheckRate(counts.key, requested, request.limits.per_key, "on this key"));
  SIGNET_TRY(CheckRate(counts.account_key, requested, request.limits.per_account_key,
                       "for this account on this key"));
  SIGNET_TRY(CheckRate(counts.account, requested, request.limits.per_account, "for this account"));
  return OkStatus();
}

}  // namespace

Status CheckActivationConsumable(const std::optional<ActivationRecord>& activation,
                                 const ConsumeActivationRequest& request,
                                 const SignatureCounts& counts) {
  SIGNET_TRY(CheckActivationHead(activation, request));
  const ActivationRecord& a = *activation;
  for (const Bytes& h : request.hashes) {
    auto it = std::find_if(a.hashes.begin(), a.hashes.end(),
                           [&](const ActivationHash& ah) { return ah.hash == h; });
    if (it == a.hashes.end()) {
      return PermissionDenied(std::string(kHashNotAuthorizedMessage) + ": " + ShortHex(h) +
                              " is not one of the hashes it was issued for");
    }
    if (it->consumed_at.has_value()) {
      return PermissionDenied(std::string(kHashNotAuthorizedMessage) + " any more: " + ShortHex(h) +
                              " was already used at " + FormatRfc3339(*it->consumed_at) +
                              "; each authorized hash can be signed once");
    }
  }
  return CheckActivationRates(request, counts);
}

Status CheckActivationRequest(const std::optional<ActivationRecord>& activation,
                              const ConsumeActivationRequest& request,
                              const SignatureCounts& counts) {
  SIGNET_TRY(CheckActivationHead(activation, request));
  return CheckActivationRates(request, counts);
}

}  // namespace signet::store

// ---- end of activations, grants, policies, audit events ----
