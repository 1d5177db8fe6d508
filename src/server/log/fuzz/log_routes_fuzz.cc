// libFuzzer target for the audit log's HTTP routes (log_routes.h): request-targets straight from
// clients, through the real target parser, router and handlers, on a real SqliteStore holding a
// log that audit's LogFixture built and signed (1504 entries, checkpoints of sizes 1400 and 1503
// recorded at entries 1400 and 1503; the first ten entries and two after the first checkpoint
// name two keys and two accounts, for the query's filters; the store's block summaries cover
// entries 0..1279, so queries read both summarised blocks and the entries after them). The log
// is read-only, so it is built once.
//
// Input: byte 0 picks the route prefix (modulo 5: /log/checkpoint, /log/tile/,
// /api/v1/log/proof/inclusion?, /api/v1/log/proof/consistency?, /api/v1/log/entries?), byte 1 the
// caller (modulo 4: nobody, an auditor's token, a signer's token, nobody on a router with public
// reading), the rest is appended to the prefix to form the request-target.
//
// Checked: every answer is 200 or 4xx, a 4xx a JSON error with one of the management API's codes
// and a description; and what a 200 serves is right, against the leaf hashes read back from the
// store: the checkpoint opens with the log key and signs size 1503 and its root; a hash tile is the
// one tlog-tiles defines; an entry bundle's entries hash to the leaves they stand for; proofs are
// for what was asked and verify against the roots; an entry page is in index order, after
// `after`, within `limit`, matches the key, account and action filters, and each entry is byte for
// byte the logged one; without a time filter, the page is exactly the first `limit` matching
// entries after `after`. No tile or proof goes beyond the signed size.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/testing/log_fixture.h"
#include "audit/tiles.h"
#include "common/encoding.h"
#include "server/internal/http_util.h"
#include "server/log/log_routes.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::server::log {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using audit::Sha256Digest;
using audit::TreeSize;

constexpr uint64_t kSignedSize = 1503;
constexpr std::string_view kPrefixes[] = {
    "/log/checkpoint",
    "/log/tile/",
    "/api/v1/log/proof/inclusion?",
    "/api/v1/log/proof/consistency?",
    "/api/v1/log/entries?",
};

[[noreturn]] void Fail(std::string_view why, std::string_view target, const Response* r) {
  std::fprintf(stderr, "log routes fuzz: %.*s\ntarget %.*s", static_cast<int>(why.size()),
               why.data(), static_cast<int>(target.size()), target.data());
  if (r != nullptr) std::fprintf(stderr, ", status %d, body %.400s", r->status, r->body.c_str());
  std::fprintf(stderr, "\n");
  std::abort();
}

void Require(bool ok, std::string_view why, std::string_view target, const Response& r) {
  if (!ok) Fail(why, target, &r);
}

// The store, services and log, built once.
class Fixture {
 public:
  Fixture() {
    char dir_template[] = "/tmp/signet-log-routes-fuzz-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) Fail("mkdtemp", "", nullptr);
    dir_ = dir_template;
    auto store = store::SqliteStore::Open(dir_ + "/signet.db");
    if (!store.ok()) Fail(store.error().message(), "", nullptr);
    store_ = std::move(store).value();
    accounts_ = std::make_unique<service::AccountService>(*store_, sealer_, hasher_, totp_, clock_);
    if (!RegisterLogRoutes(router_, {*store_, *accounts_, false}).ok() ||
        !RegisterLogRoutes(public_router_, {*store_, *accounts_, true}).ok()) {
      Fail("RegisterLogRoutes", "", nullptr);
    }
    std::string auditor_id;
    std::string signer_id;
    auditor_ = Login("audrey", store::Role::kAuditor, auditor_id);
    signer_ = Login("alice", store::Role::kSigner, signer_id);
    ids_ = {{"audrey", auditor_id}, {"alice", signer_id}, {"release", "k_1"}, {"nightly", "k_2"}};
    BuildLog(auditor_id, signer_id);
  }
  ~Fixture() {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  Response Call(const internal::ParsedTarget& target, std::string_view raw, uint8_t caller) {
    Request r;
    r.method = "GET";
    r.target = std::string(raw);
    r.path = target.path;
    r.query = target.query;
    r.client_address = "192.0.2.9:4444";
    r.request_id = std::string(32, 'e');
    const int who = caller % 4;
    if (who == 1) r.headers.emplace_back("authorization", "Bearer " + auditor_);
    if (who == 2) r.headers.emplace_back("authorization", "Bearer " + signer_);
    const Router& router = who == 3 ? public_router_ : router_;
    Router::Match m = router.Find("GET", r.path);
    if (m.route == nullptr) {
      Response none;
      none.status = 404;  // what the router answers, with no body
      return none;
    }
    r.route = m.route->pattern;
    return m.route->handler(r);
  }

  const std::vector<Sha256Digest>& leaves() const { return leaves_; }
  // Every entry of the log, as the store holds it.
  const std::vector<store::LogEntryRow>& entries() const { return entries_; }
  Sha256Digest RootAt(uint64_t size) const {
    return audit::RootFromLeafHashes(std::span<const Sha256Digest>(leaves_).first(size));
  }
  const audit::testing::LogFixture& log() const { return *log_; }
  // Key and account names in the log, to their ids.
  const std::map<std::string, std::string, std::less<>>& ids() const { return ids_; }

 private:
  // A person with `role` and a bearer token, the one-time password replaced.
  std::string Login(const std::string& name, store::Role role, std::string& id) {
    auto created = accounts_->CreatePerson(service::SystemPrincipal(), name, store::RoleSet{role});
    if (!created.ok()) Fail(created.error().message(), "", nullptr);
    id = created->account.id;
    const SecretBytes seed = signet::testing::Base32Decode(created->totp.secret_base32.text_view());
    auto code = [&] { return std::string(totp_.Generate(seed, clock_.Now())->text_view()); };
    auto first = accounts_->LoginWithPassword(name, created->one_time_password, code(), {});
    clock_.Advance(30s);
    const SecretBytes password{std::string_view("a long password for the fuzzer")};
    if (!first.ok() ||
        !accounts_->ChangePassword(first->principal, created->one_time_password, password).ok()) {
      Fail("first login", "", nullptr);
    }
    auto login = accounts_->LoginWithPassword(name, password, code(), {});
    clock_.Advance(30s);
    if (!login.ok()) Fail(login.error().message(), "", nullptr);
    return std::string(login->token.text_view());
  }

  void BuildLog(const std::string& auditor_id, const std::string& signer_id) {
    auto log = audit::testing::LogFixture::Create(*store_);
    if (!log.ok()) Fail(log.error().message(), "", nullptr);
    log_ = std::move(log).value();
    const TimePoint t0 = FromUnixSeconds(1'800'000'000);
    if (!audit::testing::LogFixture::InsertKey(*store_, "k_1", "release", t0).ok() ||
        !audit::testing::LogFixture::InsertKey(*store_, "k_2", "nightly", t0).ok()) {
      Fail("inserting the keys", "", nullptr);
    }
    // 0..4 signatures with "release" by alice at t0; 5..7 grants of "nightly" at t0 + 1 h;
    // 8..9 logins of audrey at t0 + 2 h; then plain entries; the checkpoint of 1400 at 1400;
    // 1401..1402 signatures with "release" by alice at t0 + 3 h, plain entries, the checkpoint of
    // 1503 at 1503.
    if (!log_->Append(5, {"sign", "k_1", signer_id, t0}).ok() ||
        !log_->Append(3, {"grant", "k_2", auditor_id, t0 + 1h}).ok() ||
        !log_->Append(2, {"login_success", "", auditor_id, t0 + 2h}).ok() ||
        !log_->Append(1390).ok() || !log_->Publish().ok() ||
        !log_->Append(2, {"sign", "k_1", signer_id, t0 + 3h}).ok() || !log_->Append(100).ok()) {
      Fail("building the log", "", nullptr);
    }
    auto latest = log_->Publish();
    if (!latest.ok() || latest->size != static_cast<int64_t>(kSignedSize)) {
      Fail("publishing the checkpoint of size 1503", "", nullptr);
    }
    auto all = store_->ReadLogEntries(0, 10000);
    if (!all.ok() || all->size() != kSignedSize + 1) Fail("reading the log back", "", nullptr);
    entries_ = std::move(all).value();
    auto leaves = log_->LeafHashes(static_cast<int64_t>(kSignedSize));
    if (!leaves.ok()) Fail(leaves.error().message(), "", nullptr);
    leaves_ = std::move(leaves).value();
  }

  std::string dir_;
  FakeClock clock_{FromUnixSeconds(1'790'000'000)};
  signet::testing::FakeSecretSealer sealer_;
  service::Argon2PasswordHasher hasher_{
      service::Argon2Parameters{.iterations = 1, .memory_kib = 256, .parallelism = 1}};
  service::OathTotp totp_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<service::AccountService> accounts_;
  Router router_;
  Router public_router_;
  std::string auditor_;
  std::string signer_;
  std::unique_ptr<audit::testing::LogFixture> log_;
  std::vector<Sha256Digest> leaves_;
  std::vector<store::LogEntryRow> entries_;
  std::map<std::string, std::string, std::less<>> ids_;
};

Fixture& TheFixture() {
  static Fixture* fixture = [] {
    auto* f = new Fixture();
    // Removes the temporary database when the fuzzer exits normally.
    std::atexit([] { delete &TheFixture(); });
    return f;
  }();
  return *fixture;
}

const std::set<std::string, std::less<>> kApiErrors = {
    "invalid_request", "failed_precondition", "not_found",         "already_exists",
    "access_denied",   "invalid_token",       "too_many_requests",
};

std::vector<Sha256Digest> Hashes(const json& list, std::string_view target, const Response& r) {
  Require(list.is_array(), "a proof that is not a list", target, r);
  std::vector<Sha256Digest> out;
  for (const json& h : list) {
    Require(h.is_string(), "a proof hash that is not a string", target, r);
    auto bytes = Base64Decode(h.get<std::string>());
    Require(bytes.ok(), "a proof hash that is not base64", target, r);
    auto digest = audit::ToSha256Digest(*bytes);
    Require(digest.ok(), "a proof hash that is not 32 bytes", target, r);
    out.push_back(*digest);
  }
  return out;
}

uint64_t Number(const json& body, const char* name, std::string_view target, const Response& r) {
  const json& value = body[name];
  Require(value.is_number_unsigned(), "a field that is not a count", target, r);
  return value.get<uint64_t>();
}

void CheckTile(Fixture& f, std::string_view path, std::string_view target, const Response& r) {
  auto tile = audit::ParseTilePath(path.substr(std::string_view("/log/").size()));
  Require(tile.ok(), "a tile served for a path that does not parse", target, r);
  const std::vector<Sha256Digest>& leaves = f.leaves();
  if (tile->entries) {
    const uint64_t first = tile->index * audit::kTileWidth;
    Require(first + static_cast<uint64_t>(tile->width) <= kSignedSize,
            "an entry bundle beyond the signed size", target, r);
    auto entries = audit::DecodeEntryBundle(AsBytes(r.body), tile->width);
    Require(entries.ok(), "an entry bundle that does not decode", target, r);
    for (size_t k = 0; k < entries->size(); ++k) {
      Require(audit::HashLeaf(AsBytes((*entries)[k])) == leaves[first + k],
              "an entry bundle entry that is not the logged one", target, r);
    }
    return;
  }
  // A level-L tile holds hashes of subtrees of 256^L leaves; only complete ones are signed.
  const uint64_t hashes = kSignedSize >> (8 * tile->level);
  Require(tile->index <= hashes / audit::kTileWidth &&
              tile->index * audit::kTileWidth + static_cast<uint64_t>(tile->width) <= hashes,
          "a hash tile beyond the signed size", target, r);
  const Bytes expected =
      audit::testing::LogFixture::ExpectedTile(leaves, tile->level, tile->index, tile->width);
  Require(r.body.size() == expected.size() &&
              std::equal(expected.begin(), expected.end(),
                         reinterpret_cast<const uint8_t*>(r.body.data())),
          "a hash tile that is not the one tlog-tiles defines", target, r);
}

void CheckEntries(const json& body, const internal::ParsedTarget& parsed, std::string_view target,
                  const Fixture& f, const Response& r) {
  // The route accepted the query, so these are plain decimal numbers; anything else is a finding.
  auto number = [&](const std::string& text) {
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    Require(ec == std::errc() && end == text.data() + text.size(), "an accepted bad number", target,
            r);
    return value;
  };
  std::optional<int64_t> after;
  int64_t limit = 100;  // the route's default
  bool by_time = false;
  for (const auto& [name, value] : parsed.query) {
    if (name == "after") after = number(value);
    if (name == "limit") limit = number(value);
    if (name == "since" || name == "until") by_time = true;
  }
  const json& entries = body["entries"];
  Require(entries.is_array() && static_cast<int64_t>(entries.size()) <= limit,
          "an entry page longer than its limit", target, r);
  // The filters the route accepted, as the fields the entries must then hold.
  std::vector<std::pair<std::string, std::string>> fields;
  for (const auto& [name, value] : parsed.query) {
    if (name == "action") fields.emplace_back("action", value);
    if (name == "key" || name == "account") {
      const auto id = f.ids().find(value);
      Require(id != f.ids().end(), "a filter by a name the log does not hold", target, r);
      fields.emplace_back(name == "key" ? "key_id" : "account_id", id->second);
    }
  }
  if (!by_time) {
    // Nothing may be left out: the page is the first `limit` matching entries after `after`.
    std::vector<int64_t> expected;
    for (const store::LogEntryRow& row : f.entries()) {
      if (static_cast<int64_t>(expected.size()) == limit) break;
      if (row.index <= after.value_or(-1)) continue;
      bool match = true;
      for (const auto& [field, value] : fields) {
        const std::string& held = field == "action" ? row.action
                                  : field == "key_id" ? row.key_id
                                                      : row.account_id;
        match = match && held == value;
      }
      if (match) expected.push_back(row.index);
    }
    Require(entries.size() == expected.size(), "an entry page that leaves matching entries out",
            target, r);
    for (size_t k = 0; k < expected.size(); ++k) {
      Require(entries[k].is_object() && entries[k]["index"] == expected[k],
              "an entry page that leaves matching entries out", target, r);
    }
  }
  int64_t previous = after.value_or(-1);
  for (const json& e : entries) {
    Require(e.is_object() && e["index"].is_number_integer() && e["entry_b64"].is_string(),
            "an entry without an index and entry_b64", target, r);
    const int64_t index = e["index"].get<int64_t>();
    Require(index > previous, "entries out of order or not after 'after'", target, r);
    previous = index;
    auto exact = Base64Decode(e["entry_b64"].get<std::string>());
    Require(exact.ok(), "an entry_b64 that is not base64", target, r);
    if (static_cast<uint64_t>(index) < kSignedSize) {
      Require(audit::HashLeaf(*exact) == f.leaves()[static_cast<size_t>(index)],
              "an entry that is not the logged one", target, r);
    }
    const json entry = json::parse(exact->begin(), exact->end(), nullptr, false);
    Require(entry.is_object(), "an entry that is not a JSON object", target, r);
    for (const auto& [field, expected] : fields) {
      Require(entry.value(field, "") == expected, "an entry that does not match the filter", target,
              r);
    }
  }
}

}  // namespace
}  // namespace signet::server::log

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace signet;
  using namespace signet::server;
  using namespace signet::server::log;
  if (size < 2) return 0;
  Fixture& f = TheFixture();
  const size_t route = data[0] % std::size(kPrefixes);
  const std::string target = std::string(kPrefixes[route]) +
                             std::string(reinterpret_cast<const char*>(data + 2), size - 2);
  auto parsed = server::internal::ParseTarget(target);
  if (!parsed.ok()) return 0;  // the transport answers 400 before any route
  const Response r = f.Call(*parsed, target, data[1]);
  // SIGNET_FUZZ_VERBOSE=1: what each input got, to see which paths a seed reaches.
  if (std::getenv("SIGNET_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "  %s -> %d %.200s\n", target.c_str(), r.status,
                 r.content_type == "application/json" ? r.body.c_str() : "(not JSON)");
  }
  Require(r.status == 200 || (r.status >= 400 && r.status < 500), "a status not 200 or 4xx", target,
          r);
  if (r.status == 404 && r.body.empty()) return 0;  // no route: the router's own 404
  if (r.status != 200) {
    Require(r.content_type == "application/json", "an error that is not JSON", target, r);
    json body = json::parse(r.body, nullptr, false);
    Require(body.is_object() && body["error"].is_string() &&
                kApiErrors.count(body["error"].get<std::string>()) == 1,
            "an error code that is not the management API's", target, r);
    Require(body["error_description"].is_string() &&
                !body["error_description"].get<std::string>().empty(),
            "an error without a description", target, r);
    return 0;
  }
  switch (route) {
    case 0: {
      const audit::VerifierKey key = f.log().verifier_key();
      auto checkpoint = audit::OpenCheckpoint(r.body, f.log().origin(),
                                              std::span<const audit::VerifierKey>(&key, 1));
      Require(checkpoint.ok() && checkpoint->checkpoint.size.value() == kSignedSize &&
                  checkpoint->checkpoint.root == f.RootAt(kSignedSize),
              "a checkpoint that is not the signed latest one", target, r);
      return 0;
    }
    case 1:
      CheckTile(f, parsed->path, target, r);
      return 0;
    default:
      break;
  }
  json body = json::parse(r.body, nullptr, false);
  Require(body.is_object(), "a body that is not a JSON object", target, r);
  // The route accepted the query, so its parameters are plain counts.
  auto asked = [&](std::string_view name) {
    uint64_t value = 0;
    for (const auto& [n, v] : parsed->query) {
      if (n != name) continue;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
      Require(ec == std::errc() && end == v.data() + v.size(), "an accepted bad count", target, r);
    }
    return value;
  };
  if (route == 2) {
    const uint64_t index = Number(body, "index", target, r);
    const uint64_t tree = Number(body, "size", target, r);
    Require(index == asked("index") && tree == asked("size"),
            "a proof for another index or size than asked", target, r);
    Require(body["leaf_hash"].is_string() &&
                body["leaf_hash"].get<std::string>() == Base64Encode(f.leaves()[index]),
            "an inclusion proof's leaf_hash that is not the leaf's", target, r);
    Require(index < tree && tree <= kSignedSize, "an inclusion proof beyond the signed size",
            target, r);
    Require(audit::VerifyInclusion(f.leaves()[index], audit::LeafIndex(index), TreeSize(tree),
                                   Hashes(body["proof"], target, r), f.RootAt(tree))
                .ok(),
            "an inclusion proof that does not verify", target, r);
  } else if (route == 3) {
    const uint64_t from = Number(body, "from", target, r);
    const uint64_t to = Number(body, "to", target, r);
    Require(from == asked("from") && to == asked("to"), "a proof between other sizes than asked",
            target, r);
    Require(from >= 1 && from <= to && to <= kSignedSize,
            "a consistency proof beyond the signed size", target, r);
    Require(audit::VerifyConsistency(TreeSize(from), TreeSize(to), Hashes(body["proof"], target, r),
                                     f.RootAt(from), f.RootAt(to))
                .ok(),
            "a consistency proof that does not verify", target, r);
  } else {
    CheckEntries(body, *parsed, target, f, r);
  }
  return 0;
}
