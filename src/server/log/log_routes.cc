// The log routes (docs/api.md "Log"): authenticate unless the resource is public, parse the path
// or query strictly, read the store, answer bytes or JSON. What is published is bounded by the
// latest signed checkpoint, read once per request, so a tile and the checkpoint that authenticates
// it can never disagree about the size.
#include "server/log/log_routes.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/merkle.h"
#include "audit/tiles.h"
#include "common/encoding.h"
#include "common/log.h"
#include "server/internal/json_handler.h"
#include "service/audit_sink.h"

namespace signet::server::log {
namespace {

using json = nlohmann::json;

constexpr std::string_view kTilesPrefix = "/log/";  // tlog-tiles paths are relative to it
constexpr int64_t kDefaultEntryLimit = 100;
constexpr int64_t kMaxEntryLimit = 1000;

// Cache lifetimes (docs/api.md "Log"). Full tiles never change (c2sp.org/tlog-tiles). A partial
// tile's bytes never change either, but clients only ask for it while it is the right edge of the
// tree, so a short lifetime costs nothing and keeps caches from holding many dead prefixes. The
// checkpoint moves with every integration.
constexpr std::string_view kFullTileCache = "max-age=31536000, immutable";
constexpr std::string_view kPartialTileCache = "max-age=60";
constexpr std::string_view kCheckpointCache = "no-cache";

// ---- errors -------------------------------------------------------------------------------------

// The management API's error table (internal::ApiErrorResponse, docs/api.md "Errors"), never
// cached.
Response LogErrorResponse(const Error& error, std::string_view request_id) {
  Response r = internal::ApiErrorResponse(error, request_id);
  // A 404 for a tile beyond the checkpoint turns into a 200 later: never cache an error.
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// ---- access -------------------------------------------------------------------------------------

enum class Access {
  kTiles,    // the tlog-tiles resources: open when public_read, else auditor or admin
  kAuditor,  // auditor or admin
};

Status Authorize(const LogRouteDependencies& deps, Access access, const Request& request) {
  if (access == Access::kTiles && deps.public_read) return OkStatus();
  // A person still holding a one-time password is refused (PermissionDenied) here.
  SIGNET_ASSIGN_OR_RETURN(internal::Authenticated who,
                          internal::AuthenticateBearer(deps.accounts, request));
  if (!who.principal.Has(store::Role::kAdmin) && !who.principal.Has(store::Role::kAuditor)) {
    return PermissionDenied("account '" + who.principal.name +
                            "' lacks the auditor or admin role needed to read the log");
  }
  return OkStatus();
}

// ---- query parameters ---------------------------------------------------------------------------

// Like the API's unknown body fields: an unknown or repeated parameter is an error, so a typo
// never silently widens a query.
Status CheckQuery(const Request& request, std::initializer_list<std::string_view> allowed) {
  for (size_t i = 0; i < request.query.size(); ++i) {
    const std::string& name = request.query[i].first;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return InvalidArgument("unknown query parameter '" + name + "'");
    }
    for (size_t j = 0; j < i; ++j) {
      if (request.query[j].first == name) {
        return InvalidArgument("query parameter '" + name + "' is given twice");
      }
    }
  }
  return OkStatus();
}

// The checkpoint and the tiles are static files in tlog-tiles: a query string, even an empty
// one, would only make another cache key for the same immutable answer (and let anonymous
// clients go around a cache in front of the log).
Status CheckNoQuery(const Request& request) {
  if (request.target.find('?') != std::string::npos || !request.query.empty()) {
    return InvalidArgument("this path takes no query string");
  }
  return OkStatus();
}

// A decimal integer 0 .. INT64_MAX: digits only, no sign, no leading zeros.
Result<int64_t> ParseCount(std::string_view name, std::string_view text) {
  const Error bad = InvalidArgument("'" + std::string(name) +
                                    "' must be a decimal integer from 0 to 2^63-1 without sign "
                                    "or leading zeros");
  if (text.empty() || text.size() > 19 || (text.size() > 1 && text.front() == '0')) return bad;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad;
    value = value * 10 + static_cast<uint64_t>(c - '0');  // 19 digits fit in uint64
  }
  if (value > static_cast<uint64_t>(INT64_MAX)) return bad;
  return static_cast<int64_t>(value);
}

Result<std::optional<int64_t>> OptCount(const Request& request, std::string_view name) {
  auto text = request.QueryParam(name);
  if (!text) return std::optional<int64_t>();
  SIGNET_ASSIGN_OR_RETURN(int64_t value, ParseCount(name, *text));
  return std::optional<int64_t>(value);
}

Result<int64_t> ReqCount(const Request& request, std::string_view name) {
  SIGNET_ASSIGN_OR_RETURN(std::optional<int64_t> value, OptCount(request, name));
  if (!value) return InvalidArgument("query parameter '" + std::string(name) + "' is required");
  return *value;
}

// "2026-11-22T13:23:21Z" exactly (RFC 3339 in UTC with second precision, the form the entries
// carry), a real calendar date.
Result<TimePoint> ParseTime(std::string_view name, std::string_view text) {
  std::optional<TimePoint> t = ParseRfc3339(text);
  if (!t) {
    return InvalidArgument("'" + std::string(name) +
                           "' must be an RFC 3339 UTC time such as 2026-11-22T13:23:21Z");
  }
  return *t;
}

Result<std::optional<TimePoint>> OptTime(const Request& request, std::string_view name) {
  auto text = request.QueryParam(name);
  if (!text) return std::optional<TimePoint>();
  SIGNET_ASSIGN_OR_RETURN(TimePoint t, ParseTime(name, *text));
  return std::optional<TimePoint>(t);
}

// ---- the log as stored --------------------------------------------------------------------------

// The size of the latest signed checkpoint: the extent of everything published.
Result<int64_t> SignedSize(store::Store& store) {
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> latest,
                          store.LatestLogCheckpoint());
  if (!latest) {
    return NotFound(
        "the log has no signed checkpoint yet; tiles and proofs are published once "
        "the first checkpoint is signed");
  }
  return latest->size;
}

// A hash tile within the signed size. Missing means the store lost what a checkpoint covers.
Result<Bytes> FetchTile(store::Store& store, int level, uint64_t index, int width) {
  SIGNET_ASSIGN_OR_RETURN(std::optional<Bytes> tile,
                          store.GetLogTile(level, static_cast<int64_t>(index), width));
  if (!tile) {
    return DataLoss("tile " + std::to_string(level) + "/" + std::to_string(index) + " (width " +
                    std::to_string(width) + ") is missing although a checkpoint covers it");
  }
  return std::move(*tile);
}

audit::NodeHashFn StoreNodes(store::Store& store, int64_t size) {
  return audit::TileNodeHashFn(
      audit::TreeSize(static_cast<uint64_t>(size)),
      [&store](const audit::TileRef& t) { return FetchTile(store, t.level, t.index, t.width); });
}

// Whether every hash (or entry) of `tile` is part of the tree of `size` entries: level L of that
// tree has floor(size / 256^L) perfect nodes of Merkle level 8L (c2sp.org/tlog-tiles, "Partial
// tiles"), and an entry bundle spans entries [256 N, 256 N + W).
bool WithinSize(const audit::TileRef& tile, uint64_t size) {
  const uint64_t available =
      tile.entries ? size : size >> (audit::kTileHeight * static_cast<unsigned>(tile.level));
  if (tile.index > available / audit::kTileWidth) return false;
  return tile.index * audit::kTileWidth + static_cast<uint64_t>(tile.width) <= available;
}

std::string CacheControl(const LogRouteDependencies& deps, std::string_view lifetime) {
  // Without public_read the request carried a token; only the client's own cache may keep it.
  return std::string(deps.public_read ? "public, " : "private, ") + std::string(lifetime);
}

// ---- /log/ --------------------------------------------------------------------------------------

// True if an If-None-Match value (RFC 9110 §13.1.2: "*" or a list of entity tags) names `etag`.
// signet's tags are strong; a weak "W/" form of the same tag matches too (weak comparison).
bool NoneMatchNames(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    header.remove_prefix(comma == std::string_view::npos ? header.size() : comma + 1);
    if (item.substr(0, 2) == "W/") item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
  }
  return false;
}

Result<Response> GetCheckpoint(const LogRouteDependencies& deps, const Request& request) {
  SIGNET_TRY(CheckNoQuery(request));
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> latest,
                          deps.store.LatestLogCheckpoint());
  if (!latest) {
    return NotFound(
        "the log has no signed checkpoint yet; the integrator signs the first one "
        "shortly after the service starts");
  }
  // A mirror that polls revalidates with If-None-Match and gets 304 until a new note is signed.
  // The tag is opaque to clients: the first 128 bits of the note's leaf hash.
  const audit::Sha256Digest digest = audit::HashLeaf(AsBytes(latest->note));
  const std::string etag = "\"" + HexEncode(ByteView(digest.data(), 16)) + "\"";
  Response r;
  r.headers.emplace_back("Cache-Control", CacheControl(deps, kCheckpointCache));
  r.headers.emplace_back("ETag", etag);
  if (std::optional<std::string_view> none_match = request.Header("if-none-match");
      none_match && NoneMatchNames(*none_match, etag)) {
    r.status = 304;
    return r;
  }
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(latest->note);
  return r;
}

Result<Response> GetTile(const LogRouteDependencies& deps, const Request& request) {
  SIGNET_TRY(CheckNoQuery(request));
  std::string_view path = request.path;
  path.remove_prefix(kTilesPrefix.size());  // the route is /log/tile/*
  auto parsed = audit::ParseTilePath(path);
  if (!parsed.ok()) return parsed.error().WithContext("tile path");
  const audit::TileRef tile = *parsed;
  SIGNET_ASSIGN_OR_RETURN(int64_t signed_size, SignedSize(deps.store));
  if (!WithinSize(tile, static_cast<uint64_t>(signed_size))) {
    return NotFound(audit::TilePath(tile) + " is beyond the latest checkpoint (size " +
                    std::to_string(signed_size) + ")");
  }
  Response r;
  r.content_type = "application/octet-stream";
  if (tile.entries) {
    const auto first = static_cast<int64_t>(tile.index * audit::kTileWidth);
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> rows,
                            deps.store.ReadLogEntries(first, tile.width));
    std::vector<std::string> entries;
    entries.reserve(rows.size());
    for (int64_t i = 0; i < tile.width; ++i) {
      const auto k = static_cast<size_t>(i);
      if (k >= rows.size() || rows[k].index != first + i) {
        return DataLoss("entry " + std::to_string(first + i) +
                        " is missing although a checkpoint covers it");
      }
      entries.push_back(std::move(rows[k].data));
    }
    Result<Bytes> bundle = audit::EncodeEntryBundle(entries);
    if (!bundle.ok()) {
      // The request was valid; entries that cannot be bundled are the stored log's fault.
      return DataLoss("the entries of " + audit::TilePath(tile) +
                      " cannot be bundled: " + bundle.error().message());
    }
    r.body = ToString(*bundle);
  } else {
    SIGNET_ASSIGN_OR_RETURN(Bytes hashes,
                            FetchTile(deps.store, tile.level, tile.index, tile.width));
    if (hashes.size() != static_cast<size_t>(tile.width) * audit::kSha256DigestSize) {
      return DataLoss(audit::TilePath(tile) + " is stored with " + std::to_string(hashes.size()) +
                      " bytes");
    }
    r.body = ToString(hashes);
  }
  r.headers.emplace_back(
      "Cache-Control",
      CacheControl(deps, tile.width == audit::kTileWidth ? kFullTileCache : kPartialTileCache));
  return r;
}

// ---- /api/v1/log/ -------------------------------------------------------------------------------

json HashList(const std::vector<audit::Sha256Digest>& hashes) {
  json list = json::array();
  for (const audit::Sha256Digest& h : hashes) list.push_back(Base64Encode(h));
  return list;
}

Error BeyondCheckpoint(std::string_view name, int64_t value, int64_t signed_size) {
  return FailedPrecondition("'" + std::string(name) + "' " + std::to_string(value) +
                            " is beyond the latest checkpoint (size " +
                            std::to_string(signed_size) +
                            "); proofs are given only for signed sizes");
}

Result<Response> GetInclusionProof(const LogRouteDependencies& deps, const Request& request) {
  SIGNET_TRY(CheckQuery(request, {"index", "size"}));
  SIGNET_ASSIGN_OR_RETURN(int64_t index, ReqCount(request, "index"));
  SIGNET_ASSIGN_OR_RETURN(int64_t size, ReqCount(request, "size"));
  if (index >= size) {
    return InvalidArgument("'index' " + std::to_string(index) + " must be below 'size' " +
                           std::to_string(size));
  }
  SIGNET_ASSIGN_OR_RETURN(int64_t signed_size, SignedSize(deps.store));
  if (size > signed_size) return BeyondCheckpoint("size", size, signed_size);
  const audit::NodeHashFn nodes = StoreNodes(deps.store, size);
  const audit::LeafIndex leaf(static_cast<uint64_t>(index));
  SIGNET_ASSIGN_OR_RETURN(audit::Sha256Digest leaf_hash,
                          nodes(audit::NodeId{0, static_cast<uint64_t>(index)}));
  SIGNET_ASSIGN_OR_RETURN(
      std::vector<audit::Sha256Digest> proof,
      audit::InclusionProof(leaf, audit::TreeSize(static_cast<uint64_t>(size)), nodes));
  return internal::JsonResponse(json{{"index", index},
                                     {"size", size},
                                     {"leaf_hash", Base64Encode(leaf_hash)},
                                     {"proof", HashList(proof)}});
}

Result<Response> GetConsistencyProof(const LogRouteDependencies& deps, const Request& request) {
  SIGNET_TRY(CheckQuery(request, {"from", "to"}));
  SIGNET_ASSIGN_OR_RETURN(int64_t from, ReqCount(request, "from"));
  SIGNET_ASSIGN_OR_RETURN(int64_t to, ReqCount(request, "to"));
  if (from == 0) {
    return InvalidArgument(
        "'from' must be at least 1: every tree extends the empty tree, so "
        "there is nothing to prove");
  }
  if (from > to) {
    return InvalidArgument("'from' " + std::to_string(from) + " is larger than 'to' " +
                           std::to_string(to) + "; a log never shrinks");
  }
  SIGNET_ASSIGN_OR_RETURN(int64_t signed_size, SignedSize(deps.store));
  if (to > signed_size) return BeyondCheckpoint("to", to, signed_size);
  SIGNET_ASSIGN_OR_RETURN(std::vector<audit::Sha256Digest> proof,
                          audit::ConsistencyProof(audit::TreeSize(static_cast<uint64_t>(from)),
                                                  audit::TreeSize(static_cast<uint64_t>(to)),
                                                  StoreNodes(deps.store, to)));
  return internal::JsonResponse(json{{"from", from}, {"to", to}, {"proof", HashList(proof)}});
}

Result<Response> QueryEntries(const LogRouteDependencies& deps, const Request& request) {
  SIGNET_TRY(CheckQuery(request, {"since", "until", "key", "account", "action", "after", "limit"}));
  store::LogEntryQuery query;
  SIGNET_ASSIGN_OR_RETURN(query.since, OptTime(request, "since"));
  SIGNET_ASSIGN_OR_RETURN(query.until, OptTime(request, "until"));
  if (auto key = request.QueryParam("key")) {
    auto record = deps.store.GetKeyByName(*key);
    if (!record.ok()) return record.error().WithContext("'key'");
    query.key_id = record->id;
  }
  if (auto account = request.QueryParam("account")) {
    auto record = deps.store.GetAccountByName(*account);
    if (!record.ok()) return record.error().WithContext("'account'");
    query.account_id = record->id;
  }
  if (auto action = request.QueryParam("action")) {
    // The closed list of audited actions (service/audit_sink.h), so a misspelt action is an
    // error rather than an empty answer.
    auto parsed = service::ParseAuditAction(*action);
    if (!parsed.ok()) return InvalidArgument("'action': " + parsed.error().message());
    query.action = std::string(*action);
  }
  SIGNET_ASSIGN_OR_RETURN(std::optional<int64_t> after, OptCount(request, "after"));
  if (after) query.after_index = *after;
  SIGNET_ASSIGN_OR_RETURN(std::optional<int64_t> limit, OptCount(request, "limit"));
  query.limit = limit.value_or(kDefaultEntryLimit);
  if (query.limit < 1 || query.limit > kMaxEntryLimit) {
    return InvalidArgument("'limit' must be from 1 to " + std::to_string(kMaxEntryLimit));
  }

  // The size first: every entry below it exists, so a client starting "from now" (audit tail)
  // can begin after it without paging through what came before.
  SIGNET_ASSIGN_OR_RETURN(int64_t log_size, deps.store.LogSize());
  SIGNET_ASSIGN_OR_RETURN(store::LogEntryPage page, deps.store.QueryLogEntries(query));
  json entries = json::array();
  for (const store::LogEntryRow& row : page.entries) {
    json entry = json::parse(row.data, nullptr, /*allow_exceptions=*/false);
    if (!entry.is_object()) {
      return DataLoss("log entry " + std::to_string(row.index) + " is not a JSON object");
    }
    // "entry" for reading; "entry_b64" is the exact stored bytes, the ones hashed into the tree,
    // for clients that print or check entries (a JSON value would be re-serialised on the way).
    entries.push_back(json{{"index", row.index},
                           {"entry", std::move(entry)},
                           {"entry_b64", Base64Encode(AsBytes(row.data))}});
  }
  // The store's word: a page the query's work bounds cut short (even an empty one) continues
  // after next_after; null is the end.
  json next_after = nullptr;
  if (page.next_after) next_after = *page.next_after;
  return internal::JsonResponse(json{{"entries", std::move(entries)},
                                     {"next_after", std::move(next_after)},
                                     {"log_size", log_size}});
}

// ---- the route wrapper --------------------------------------------------------------------------

using RouteFn = Result<Response> (*)(const LogRouteDependencies&, const Request&);

Handler Wrap(std::shared_ptr<const LogRouteDependencies> deps, Access access, RouteFn run) {
  return [deps = std::move(deps), access, run](const Request& request) -> Response {
    try {
      Result<Response> answer = [&]() -> Result<Response> {
        SIGNET_TRY(Authorize(*deps, access, request));
        return run(*deps, request);
      }();
      if (!answer.ok()) return LogErrorResponse(answer.error(), request.request_id);
      return std::move(answer).value();
    } catch (const std::exception& e) {
      // nlohmann-json or allocation: keep it inside the handler (STYLE.md "Errors").
      return LogErrorResponse(InternalError(e.what()), request.request_id);
    }
  };
}

}  // namespace

Status RegisterLogRoutes(Router& router, LogRouteDependencies deps) {
  auto d = std::make_shared<const LogRouteDependencies>(deps);
  // docs/api.md "Log", in the order of its table. All read the database, so all are blocking.
  struct Spec {
    std::string_view pattern;
    Access access;
    RouteFn run;
  };
  const Spec routes[] = {
      {"/log/checkpoint", Access::kTiles, GetCheckpoint},
      {"/log/tile/*", Access::kTiles, GetTile},
      {"/api/v1/log/proof/inclusion", Access::kAuditor, GetInclusionProof},
      {"/api/v1/log/proof/consistency", Access::kAuditor, GetConsistencyProof},
      {"/api/v1/log/entries", Access::kAuditor, QueryEntries},
  };
  std::shared_ptr<ConcurrencyLimit> tiles_limit;
  std::shared_ptr<ConcurrencyLimit> auditor_limit;
  if (deps.max_concurrent_reads > 0) {
    tiles_limit = std::make_shared<ConcurrencyLimit>(deps.max_concurrent_reads);
    auditor_limit = std::make_shared<ConcurrencyLimit>(deps.max_concurrent_reads);
  }
  for (const Spec& route : routes) {
    SIGNET_TRY(router.Add(
        "GET", std::string(route.pattern), Wrap(d, route.access, route.run),
        RouteOptions{.blocking = true,
                     .limit = route.access == Access::kTiles ? tiles_limit : auditor_limit}));
  }
  return OkStatus();
}

// ---- monitoring ---------------------------------------------------------------------------------

HealthCheck LogHealthCheck(const audit::LogMonitor& monitor) {
  return HealthCheck{"log", [&monitor] { return monitor.Health(); }};
}

void DeclareLogMetrics(Metrics& metrics) {
  metrics.DeclareGauge("signet_log_size", "Entries in the audit log at the last check.");
  metrics.DeclareGauge("signet_log_checkpoint_size",
                       "Size of the latest signed checkpoint at the last check.");
  metrics.DeclareGauge("signet_log_checkpoint_age_seconds",
                       "Age of the latest signed checkpoint when last checked.");
  metrics.DeclareGauge("signet_log_verify_ok",
                       "1 if the last re-verification of the audit log passed, else 0.");
  metrics.DeclareCounter("signet_log_verify_failures_total",
                         "Re-verifications of the audit log that failed.");
  metrics.DeclareCounter("signet_log_data_loss_total",
                         "Re-verifications that found the stored log altered or corrupt (alert on "
                         "any increase; an outage of the store does not count).");
}

void RecordLogMetrics(const audit::LogCheck& check, Metrics& metrics) {
  DeclareLogMetrics(metrics);
  if (check.log_size) {
    metrics.SetGauge("signet_log_size", {}, static_cast<double>(*check.log_size));
  }
  if (check.checkpoint_time) {
    metrics.SetGauge("signet_log_checkpoint_size", {}, static_cast<double>(check.checkpoint_size));
    const auto age = std::chrono::duration<double>(check.time - *check.checkpoint_time).count();
    metrics.SetGauge("signet_log_checkpoint_age_seconds", {}, std::max(0.0, age));
  } else if (check.ok()) {  // no checkpoint yet
    metrics.SetGauge("signet_log_checkpoint_size", {}, 0);
    metrics.SetGauge("signet_log_checkpoint_age_seconds", {}, 0);
  }
  metrics.SetGauge("signet_log_verify_ok", {}, check.ok() ? 1 : 0);
  // Adding 0 on success makes the series exist from the first check (rate() needs a start).
  metrics.Increment("signet_log_verify_failures_total", {}, check.ok() ? 0 : 1);
  const bool data_loss = !check.ok() && check.error->code() == ErrorCode::kDataLoss;
  metrics.Increment("signet_log_data_loss_total", {}, data_loss ? 1 : 0);
}

void LogCheckLine(const audit::LogCheck& check, bool& was_failing) {
  if (!check.ok()) {
    LogLine(LogLevel::kError, "audit",
            std::string(check.error->code() == ErrorCode::kDataLoss
                            ? "the audit log does not verify (alert; run `signet audit verify`): "
                            : "the audit log could not be checked: ") +
                check.error->message());
  } else if (was_failing) {
    LogLine(LogLevel::kWarning, "audit", "the audit log's check passes again");
  }
  was_failing = !check.ok();
}

}  // namespace signet::server::log
