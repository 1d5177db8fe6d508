// The adapter that lets AccountService report to the AuditSink: AccountEvent -> AuditEvent
// (service/accounts.h says its event sink is "meant to be an adapter onto service/audit_sink.h").
// Lives in the composition root, which is the only place both sides meet.
//
// Mapping: the action keeps its name (token_rejected, which has no audit action of its own, is
// recorded as login_failure with details["account_action"] = "token_rejected"); the outcome is
// "success" or the AccountReasonName; locked_until goes to details["locked_until"] (RFC 3339).
// The actor's auth method "password+totp", "mtls" and "system" map directly; "bearer" (a token
// issued by an earlier login) maps to the login method of the actor's account kind, looked up in
// the store (person: password+totp, service: mtls), and is kept in details["credential"].
//
// Threads: the sink is safe to call from many threads if the Store and AuditSink are.
#pragma once

#include <functional>

#include "service/accounts.h"
#include "service/audit_sink.h"
#include "store/store.h"

namespace signet::cli {

// Converts one event. `store` resolves the kind of a bearer actor (may be null, or the account
// unknown: then kNone, the method of an attempt that proved nothing).
service::AuditEvent ToAuditEvent(const service::AccountEvent& event, store::Store* store);

// A sink that records each event with `audit` (an event with a change through RecordChange, so
// the change and its record commit together), then calls `after` (if set) with the event once it
// was recorded. `store` and `audit` must outlive the sink; `store` is the store `audit` logs to.
service::AccountEventSink MakeAccountAuditSink(
    store::Store& store, service::AuditSink& audit,
    std::function<void(const service::AccountEvent&)> after = {});

}  // namespace signet::cli
