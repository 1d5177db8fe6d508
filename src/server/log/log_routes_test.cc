// The log routes driven through the Router (no network), on a real SqliteStore in a temporary
// folder and a real AccountService (Argon2id, liboath). The log is built by audit's LogFixture,
// which computes tiles straight from leaf hashes; every answer is checked against that independent
// computation, and every proof is verified against roots computed from the entries.
#include "server/log/log_routes.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "audit/merkle.h"
#include "audit/monitor.h"
#include "audit/note.h"
#include "audit/testing/log_fixture.h"
#include "audit/tiles.h"
#include "common/encoding.h"
#include "common/log.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::server::log {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using audit::Sha256Digest;
using audit::TileRef;
using audit::TreeSize;
using audit::testing::LogFixture;
using store::Role;

const TimePoint kT0 = FromUnixSeconds(1'800'000'000);
constexpr service::Argon2Parameters kFastArgon2{
    .iterations = 1, .memory_kib = 256, .parallelism = 1};

class LogRoutesTest : public ::testing::Test {
 protected:
  LogRoutesTest() : accounts_(*OpenStore(), sealer_, hasher_, totp_, clock_) {}

  // The store is opened before the account service that holds a reference to it.
  store::SqliteStore* OpenStore() {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-log-routes-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = store::SqliteStore::Open((dir_ / "signet.db").string());
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message();
      std::abort();
    }
    store_ = std::move(store).value();
    return store_.get();
  }

  void SetUp() override {
    ASSERT_TRUE(RegisterLogRoutes(router_, {*store_, accounts_, /*public_read=*/false}).ok());
    ASSERT_TRUE(RegisterLogRoutes(public_router_, {*store_, accounts_, /*public_read=*/true}).ok());
    auditor_ = Login("audrey", {Role::kAuditor});
    admin_ = Login("root", {Role::kAdmin});
    signer_ = Login("alice", {Role::kSigner});
    newbie_ = Login("nina", {Role::kAuditor}, /*change_password=*/false);
    auto log = LogFixture::Create(*store_);
    ASSERT_TRUE(log.ok()) << log.error().message();
    log_ = std::move(log).value();
  }

  void TearDown() override {
    log_.reset();
    store_.reset();  // accounts_ keeps a reference but does not use it once the test is over
    std::filesystem::remove_all(dir_);
  }

  // A person with a bearer token (after replacing the one-time password, unless told not to).
  std::string Login(const std::string& name, store::RoleSet roles, bool change_password = true) {
    auto created = accounts_.CreatePerson(service::SystemPrincipal(), name, roles);
    EXPECT_TRUE(created.ok()) << created.error().message();
    if (!created.ok()) return "";
    ids_[name] = created->account.id;
    SecretBytes seed = signet::testing::Base32Decode(created->totp.secret_base32.text_view());
    std::string password(created->one_time_password.text_view());
    auto login = [&]() -> Result<service::BearerToken> {
      auto code = totp_.Generate(seed, clock_.Now());
      auto token = accounts_.LoginWithPassword(name, SecretBytes(std::string_view(password)),
                                               code->text_view(), {"192.0.2.1:1"});
      clock_.Advance(30s);
      return token;
    };
    if (change_password) {
      auto first = login();
      EXPECT_TRUE(first.ok());
      const std::string next = name + " has a long password";
      EXPECT_TRUE(accounts_
                      .ChangePassword(first->principal, SecretBytes(std::string_view(password)),
                                      SecretBytes(std::string_view(next)))
                      .ok());
      password = next;
    }
    auto token = login();
    EXPECT_TRUE(token.ok());
    return token.ok() ? std::string(token->token.text_view()) : "";
  }

  // GET `target` ("/path?a=1&b=2", no percent-encoding needed) on `router`.
  static Response Get(const Router& router, const std::string& target,
                      const std::string& token = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    Request r;
    r.method = "GET";
    r.target = target;
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string_view rest = std::string_view(target).substr(q + 1);
      while (!rest.empty()) {
        const std::string_view pair = rest.substr(0, rest.find('&'));
        rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
        const size_t eq = pair.find('=');
        r.query.emplace_back(std::string(pair.substr(0, eq)),
                             eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1)));
      }
    }
    if (!token.empty()) r.headers.emplace_back("authorization", "Bearer " + token);
    for (auto& h : headers) r.headers.push_back(std::move(h));
    r.client_address = "192.0.2.9:4444";
    r.request_id = std::string(32, 'b');
    Router::Match m = router.Find("GET", r.path);
    EXPECT_NE(m.route, nullptr) << r.path;
    if (m.route == nullptr) return {};
    r.route = m.route->pattern;
    return m.route->handler(r);
  }
  Response Get(const std::string& target) { return Get(router_, target, auditor_); }

  static std::string HeaderOf(const Response& r, std::string_view name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }

  static void ExpectError(const Response& r, int status, std::string_view error) {
    EXPECT_EQ(r.status, status) << r.body;
    json body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    EXPECT_EQ(body.value("error", ""), error) << r.body;
    EXPECT_FALSE(body.value("error_description", "").empty());
    EXPECT_EQ(HeaderOf(r, "Cache-Control"), "no-store");
  }

  static json JsonOf(const Response& r) {
    EXPECT_EQ(r.status, 200) << r.body;
    json body = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(body.is_object()) << r.body;
    return body;
  }

  static std::vector<Sha256Digest> Hashes(const json& list) {
    std::vector<Sha256Digest> out;
    for (const json& h : list) {
      auto bytes = Base64Decode(h.get<std::string>());
      EXPECT_TRUE(bytes.ok());
      auto digest = audit::ToSha256Digest(*bytes);
      EXPECT_TRUE(digest.ok());
      out.push_back(*digest);
    }
    return out;
  }

  // Checkpoints at 600 (its entry is 600) and 701 (its entry is 701): full and partial tiles on
  // levels 0 and 1 and an older partial width (tile/0/002.p/88) that is a prefix of the newest.
  void BuildLog() {
    ASSERT_TRUE(log_->Append(600).ok());
    ASSERT_TRUE(log_->Publish().ok());
    ASSERT_TRUE(log_->Append(100).ok());
    auto latest = log_->Publish();
    ASSERT_TRUE(latest.ok()) << latest.error().message();
    latest_ = *latest;
    ASSERT_EQ(latest_.size, 701);
    auto leaves = log_->LeafHashes(701);
    ASSERT_TRUE(leaves.ok());
    leaves_ = *leaves;
  }

  Sha256Digest RootAt(int64_t size) const {
    return audit::RootFromLeafHashes(
        std::span<const Sha256Digest>(leaves_).first(static_cast<size_t>(size)));
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::SqliteStore> store_;
  FakeClock clock_{kT0};
  signet::testing::FakeSecretSealer sealer_;
  service::Argon2PasswordHasher hasher_{kFastArgon2};
  service::OathTotp totp_;
  service::AccountService accounts_;
  Router router_;
  Router public_router_;
  std::map<std::string, std::string> ids_;
  std::string auditor_, admin_, signer_, newbie_;
  std::unique_ptr<LogFixture> log_;
  store::LogCheckpointRow latest_;
  std::vector<Sha256Digest> leaves_;
};

// ---- registration and access ----

TEST_F(LogRoutesTest, EveryRouteIsABlockingGet) {
  for (const char* path :
       {"/log/checkpoint", "/log/tile/0/000", "/log/tile/entries/000",
        "/api/v1/log/proof/inclusion", "/api/v1/log/proof/consistency", "/api/v1/log/entries"}) {
    Router::Match m = router_.Find("GET", path);
    ASSERT_NE(m.route, nullptr) << path;
    EXPECT_TRUE(m.route->options.blocking) << path;
    EXPECT_EQ(router_.Find("POST", path).route, nullptr) << path;
  }
}

// Log readers have admission bounds of their own, so they cannot take every worker from signing:
// one shared by the tlog-tiles resources (anyone's, with public_read), another by the auditor
// routes, so that anonymous mirrors cannot lock auditors out. Without a bound configured, none.
TEST_F(LogRoutesTest, TilesAndAuditorRoutesHaveAConcurrencyLimitEach) {
  Router limited;
  LogRouteDependencies deps{*store_, accounts_, /*public_read=*/true};
  deps.max_concurrent_reads = 2;
  ASSERT_TRUE(RegisterLogRoutes(limited, deps).ok());
  auto limit_of = [&](const char* path) {
    Router::Match m = limited.Find("GET", path);
    EXPECT_NE(m.route, nullptr) << path;
    EXPECT_EQ(router_.Find("GET", path).route->options.limit, nullptr) << path;
    return m.route != nullptr ? m.route->options.limit : nullptr;
  };
  const std::shared_ptr<ConcurrencyLimit> tiles = limit_of("/log/checkpoint");
  const std::shared_ptr<ConcurrencyLimit> auditors = limit_of("/api/v1/log/entries");
  ASSERT_NE(tiles, nullptr);
  ASSERT_NE(auditors, nullptr);
  EXPECT_NE(tiles, auditors);
  EXPECT_EQ(tiles->max_in_flight(), 2u);
  EXPECT_EQ(auditors->max_in_flight(), 2u);
  for (const char* path : {"/log/tile/0/000", "/log/tile/entries/000"}) {
    EXPECT_EQ(limit_of(path), tiles) << path;
  }
  for (const char* path : {"/api/v1/log/proof/inclusion", "/api/v1/log/proof/consistency"}) {
    EXPECT_EQ(limit_of(path), auditors) << path;
  }
}

TEST_F(LogRoutesTest, PrivateLogNeedsAnAuditorOrAdminToken) {
  BuildLog();
  for (const char* target : {"/log/checkpoint", "/log/tile/0/000", "/log/tile/entries/000",
                             "/api/v1/log/proof/inclusion?index=0&size=1",
                             "/api/v1/log/proof/consistency?from=1&to=2", "/api/v1/log/entries"}) {
    Response none = Get(router_, target);
    ExpectError(none, 401, "invalid_token");
    EXPECT_EQ(HeaderOf(none, "WWW-Authenticate"), "Bearer realm=\"signet\"");
    ExpectError(Get(router_, target, "not-a-token"), 401, "invalid_token");
    ExpectError(Get(router_, target, signer_), 403, "access_denied");
    // A one-time password must be changed first, whatever the roles.
    ExpectError(Get(router_, target, newbie_), 403, "access_denied");
    EXPECT_EQ(Get(router_, target, auditor_).status, 200) << target;
    EXPECT_EQ(Get(router_, target, admin_).status, 200) << target;
  }
}

TEST_F(LogRoutesTest, PublicReadOpensOnlyTheTlogTilesResources) {
  BuildLog();
  for (const char* target : {"/log/checkpoint", "/log/tile/0/000", "/log/tile/1/000.p/2",
                             "/log/tile/entries/002.p/189"}) {
    Response r = Get(public_router_, target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    EXPECT_EQ(HeaderOf(r, "Cache-Control").rfind("public, ", 0), 0u) << target;
  }
  for (const char* target : {"/api/v1/log/proof/inclusion?index=0&size=1",
                             "/api/v1/log/proof/consistency?from=1&to=2", "/api/v1/log/entries"}) {
    ExpectError(Get(public_router_, target), 401, "invalid_token");
    ExpectError(Get(public_router_, target, signer_), 403, "access_denied");
    EXPECT_EQ(Get(public_router_, target, auditor_).status, 200) << target;
  }
}

// ---- /log/checkpoint ----

TEST_F(LogRoutesTest, CheckpointIsNotFoundBeforeTheFirst) {
  ASSERT_TRUE(log_->Append(3).ok());
  Response r = Get("/log/checkpoint");
  ExpectError(r, 404, "not_found");
  EXPECT_NE(r.body.find("no signed checkpoint yet"), std::string::npos) << r.body;
  ExpectError(Get("/log/tile/0/000.p/3"), 404, "not_found");
  ExpectError(Get("/api/v1/log/proof/inclusion?index=0&size=1"), 404, "not_found");
}

TEST_F(LogRoutesTest, CheckpointIsTheLatestSignedNote) {
  BuildLog();
  Response r = Get("/log/checkpoint");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(r.body, latest_.note);
  EXPECT_EQ(HeaderOf(r, "Cache-Control"), "private, no-cache");
  const audit::VerifierKey keys[] = {log_->verifier_key()};
  auto opened = audit::OpenCheckpoint(r.body, log_->origin(), keys);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(opened->checkpoint.size, TreeSize(701));
  EXPECT_EQ(opened->checkpoint.root, RootAt(701));
}

// A mirror polling the checkpoint revalidates it: the same note is 304 without a body.
TEST_F(LogRoutesTest, CheckpointCarriesAnETagAndAnswers304WhileUnchanged) {
  BuildLog();
  Response r = Get("/log/checkpoint");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string etag = HeaderOf(r, "ETag");
  ASSERT_EQ(etag.size(), 2u + 32u) << etag;  // a quoted 128-bit hash of the note
  EXPECT_EQ(etag.front(), '"');
  Response same = Get(router_, "/log/checkpoint", auditor_, {{"if-none-match", etag}});
  EXPECT_EQ(same.status, 304);
  EXPECT_TRUE(same.body.empty());
  EXPECT_EQ(HeaderOf(same, "ETag"), etag);
  EXPECT_EQ(HeaderOf(same, "Cache-Control"), "private, no-cache");
  for (const char* other : {"\"0123\"", "*x", ""}) {
    Response changed = Get(router_, "/log/checkpoint", auditor_, {{"if-none-match", other}});
    EXPECT_EQ(changed.status, 200) << other;
    EXPECT_EQ(changed.body, latest_.note) << other;
  }
  Response listed =
      Get(router_, "/log/checkpoint", auditor_, {{"if-none-match", "\"x\", " + etag}});
  EXPECT_EQ(listed.status, 304);
}

// ---- /log/tile/ ----

TEST_F(LogRoutesTest, HashTilesAreTheTreeByteForByte) {
  BuildLog();
  const std::vector<TileRef> tiles = audit::TilesForSize(TreeSize(701));
  ASSERT_EQ(tiles.size(), 4u);  // 0/000, 0/001, 0/002.p/189, 1/000.p/2
  for (const TileRef& t : tiles) {
    Response r = Get("/log/" + audit::TilePath(t));
    ASSERT_EQ(r.status, 200) << audit::TilePath(t) << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/octet-stream");
    EXPECT_EQ(ToBytes(r.body), LogFixture::ExpectedTile(leaves_, t.level, t.index, t.width))
        << audit::TilePath(t);
    EXPECT_EQ(HeaderOf(r, "Cache-Control"),
              t.width == 256 ? "private, max-age=31536000, immutable" : "private, max-age=60")
        << audit::TilePath(t);
  }
}

TEST_F(LogRoutesTest, NarrowerPartialTilesAreServedAsPrefixes) {
  BuildLog();
  // Width 88 was the right edge at size 600; any width the signed tree covers is the same prefix.
  for (int width : {1, 88, 188, 189}) {
    const TileRef t{false, 0, 2, width};
    Response r = Get("/log/" + audit::TilePath(t));
    ASSERT_EQ(r.status, 200) << audit::TilePath(t) << ": " << r.body;
    EXPECT_EQ(ToBytes(r.body), LogFixture::ExpectedTile(leaves_, 0, 2, width));
  }
  Response r = Get("/log/tile/1/000.p/1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ToBytes(r.body), LogFixture::ExpectedTile(leaves_, 1, 0, 1));
  // A full tile also answers for its prefixes.
  r = Get("/log/tile/0/000.p/17");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ToBytes(r.body), LogFixture::ExpectedTile(leaves_, 0, 0, 17));
}

TEST_F(LogRoutesTest, EntryBundlesHoldTheStoredEntriesVerbatim) {
  BuildLog();
  for (const TileRef& t : audit::TilesForSize(TreeSize(701), /*with_entries=*/true)) {
    if (!t.entries) continue;
    Response r = Get("/log/" + audit::TilePath(t));
    ASSERT_EQ(r.status, 200) << audit::TilePath(t) << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/octet-stream");
    auto entries = audit::DecodeEntryBundle(AsBytes(r.body), t.width);
    ASSERT_TRUE(entries.ok()) << entries.error().message();
    auto stored = store_->ReadLogEntries(static_cast<int64_t>(t.index * 256), t.width);
    ASSERT_TRUE(stored.ok());
    ASSERT_EQ(entries->size(), stored->size());
    for (size_t i = 0; i < entries->size(); ++i) {
      const auto index = t.index * 256 + i;
      EXPECT_EQ((*entries)[i], (*stored)[i].data) << index;
      EXPECT_EQ(audit::HashLeaf(AsBytes((*entries)[i])), leaves_[index]) << index;
      json entry = json::parse((*entries)[i], nullptr, false);
      EXPECT_EQ(entry.value("index", int64_t{-1}), static_cast<int64_t>(index));
    }
    EXPECT_EQ(HeaderOf(r, "Cache-Control"),
              t.width == 256 ? "private, max-age=31536000, immutable" : "private, max-age=60");
  }
}

TEST_F(LogRoutesTest, TilesBeyondTheLatestCheckpointAreNotFound) {
  BuildLog();  // the store holds 702 entries; the checkpoint covers 701
  for (const char* path :
       {"tile/0/002", "tile/0/002.p/190", "tile/0/003.p/1", "tile/1/000", "tile/1/000.p/3",
        "tile/2/000.p/1", "tile/entries/002", "tile/entries/002.p/190", "tile/entries/x001/000"}) {
    Response r = Get("/log/" + std::string(path));
    ExpectError(r, 404, "not_found");
    EXPECT_NE(r.body.find("beyond the latest checkpoint"), std::string::npos) << r.body;
  }
}

TEST_F(LogRoutesTest, MalformedTilePathsAreBadRequests) {
  BuildLog();
  for (const char* path :
       {"tile/", "tile/0", "tile/0/", "tile/0/1", "tile/0/0001", "tile/0/x000/001", "tile/00/000",
        "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/01", "tile/0/000.p/", "tile/0/000/",
        "tile/8/000", "tile/-1/000", "tile/abc/000", "tile/entries/", "tile/entries/000.p/0",
        "tile/entries/1", "tile/0/%30%30%30"}) {
    ExpectError(Get("/log/" + std::string(path)), 400, "invalid_request");
  }
  // Static files take no query string, not even an empty one (each would be a new cache key).
  for (const char* target : {"/log/tile/0/000?1", "/log/tile/entries/000?x=1", "/log/tile/0/000?",
                             "/log/checkpoint?fresh"}) {
    ExpectError(Get(target), 400, "invalid_request");
  }
}

// ---- proofs ----

TEST_F(LogRoutesTest, InclusionProofsVerifyAgainstTheRoots) {
  BuildLog();
  for (int64_t size : {1, 2, 255, 256, 257, 600, 700, 701}) {
    for (int64_t index : {int64_t{0}, size / 2, size - 1}) {
      const std::string target = "/api/v1/log/proof/inclusion?index=" + std::to_string(index) +
                                 "&size=" + std::to_string(size);
      Response r = Get(target);
      json body = JsonOf(r);
      EXPECT_EQ(HeaderOf(r, "Cache-Control"), "no-store");
      EXPECT_EQ(body.value("index", int64_t{-1}), index);
      EXPECT_EQ(body.value("size", int64_t{-1}), size);
      auto leaf = Base64Decode(body.value("leaf_hash", ""));
      ASSERT_TRUE(leaf.ok()) << target;
      EXPECT_EQ(*audit::ToSha256Digest(*leaf), leaves_[static_cast<size_t>(index)]) << target;
      const std::vector<Sha256Digest> proof = Hashes(body["proof"]);
      Status ok = audit::VerifyInclusion(
          leaves_[static_cast<size_t>(index)], audit::LeafIndex(static_cast<uint64_t>(index)),
          TreeSize(static_cast<uint64_t>(size)), proof, RootAt(size));
      EXPECT_TRUE(ok.ok()) << target << ": " << ok.error().message();
    }
  }
}

TEST_F(LogRoutesTest, ConsistencyProofsVerifyAgainstTheRoots) {
  BuildLog();
  const std::pair<int64_t, int64_t> pairs[] = {{1, 701},   {7, 8},     {255, 256}, {256, 701},
                                               {300, 600}, {600, 701}, {700, 701}, {701, 701}};
  for (const auto& [from, to] : pairs) {
    const std::string target =
        "/api/v1/log/proof/consistency?from=" + std::to_string(from) + "&to=" + std::to_string(to);
    json body = JsonOf(Get(target));
    EXPECT_EQ(body.value("from", int64_t{-1}), from);
    EXPECT_EQ(body.value("to", int64_t{-1}), to);
    const std::vector<Sha256Digest> proof = Hashes(body["proof"]);
    Status ok = audit::VerifyConsistency(TreeSize(static_cast<uint64_t>(from)),
                                         TreeSize(static_cast<uint64_t>(to)), proof, RootAt(from),
                                         RootAt(to));
    EXPECT_TRUE(ok.ok()) << target << ": " << ok.error().message();
  }
}

TEST_F(LogRoutesTest, ProofsAreOnlyForSignedSizesAndWellFormedQueries) {
  BuildLog();
  const std::string inc = "/api/v1/log/proof/inclusion";
  const std::string con = "/api/v1/log/proof/consistency";
  Response beyond = Get(inc + "?index=0&size=702");
  ExpectError(beyond, 400, "failed_precondition");
  EXPECT_NE(beyond.body.find("latest checkpoint (size 701)"), std::string::npos) << beyond.body;
  ExpectError(Get(con + "?from=1&to=702"), 400, "failed_precondition");
  for (const std::string& target :
       {inc, inc + "?index=0", inc + "?size=5", inc + "?index=5&size=5", inc + "?index=0&size=0",
        inc + "?index=-1&size=5", inc + "?index=01&size=5", inc + "?index=0&size=5&x=1",
        inc + "?index=0&size=5&size=5", inc + "?index=a&size=5",
        inc + "?index=0&size=99999999999999999999", con + "?from=0&to=5", con + "?from=6&to=5",
        con + "?from=1", con + "?from=1&to=2&index=0", con + "?from=+1&to=2"}) {
    ExpectError(Get(target), 400, "invalid_request");
  }
}

// ---- the entry query ----

class LogEntriesTest : public LogRoutesTest {
 protected:
  void SetUp() override {
    LogRoutesTest::SetUp();
    ASSERT_TRUE(LogFixture::InsertKey(*store_, "k_1", "release", kT0).ok());
    ASSERT_TRUE(LogFixture::InsertKey(*store_, "k_2", "nightly", kT0).ok());
    // 0..4: alice signs with "release" at T0; 5..7: root grants "nightly" at T0 + 1 h;
    // 8..9: audrey logs in at T0 + 2 h.
    ASSERT_TRUE(log_->Append(5, {"sign", "k_1", ids_["alice"], kT0}).ok());
    ASSERT_TRUE(log_->Append(3, {"grant", "k_2", ids_["root"], kT0 + 1h}).ok());
    ASSERT_TRUE(log_->Append(2, {"login_success", "", ids_["audrey"], kT0 + 2h}).ok());
  }

  // The indices of an answer, checking that each entry is the stored JSON object.
  std::vector<int64_t> Indices(const json& body) {
    std::vector<int64_t> out;
    for (const json& e : body["entries"]) {
      const int64_t index = e.value("index", int64_t{-1});
      out.push_back(index);
      auto stored = store_->ReadLogEntries(index, 1);
      EXPECT_TRUE(stored.ok() && stored->size() == 1u);
      if (stored.ok() && stored->size() == 1u) {
        EXPECT_EQ(e["entry"].dump(), (*stored)[0].data) << index;
        auto exact = Base64Decode(e.value("entry_b64", ""));
        EXPECT_TRUE(exact.ok() && std::string(exact->begin(), exact->end()) == (*stored)[0].data)
            << index;
      }
    }
    return out;
  }

  json Query(const std::string& query) { return JsonOf(Get("/api/v1/log/entries" + query)); }
};

TEST_F(LogEntriesTest, ReturnsEveryEntryInIndexOrderWithoutFilters) {
  json body = Query("");
  EXPECT_EQ(Indices(body), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(body["next_after"].is_null());
  EXPECT_EQ(body["log_size"], 10);
  // The log's size whatever the page holds.
  EXPECT_EQ(Query("?action=login_success&limit=1")["log_size"], 10);
}

TEST_F(LogEntriesTest, FiltersByKeyAccountActionAndTime) {
  EXPECT_EQ(Indices(Query("?key=release")), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Indices(Query("?account=root")), (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(Indices(Query("?action=login_success")), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(Indices(Query("?since=2027-01-15T09:00:00Z")),  // kT0 + 1 h
            (std::vector<int64_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(Indices(Query("?until=2027-01-15T09:00:00Z")), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Indices(Query("?since=2027-01-15T09:00:00Z&until=2027-01-15T10:00:00Z&key=nightly")),
            (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(Indices(Query("?key=release&action=grant")), (std::vector<int64_t>{}));
}

TEST_F(LogEntriesTest, PagesWithAfterAndLimit) {
  json page = Query("?limit=4");
  EXPECT_EQ(Indices(page), (std::vector<int64_t>{0, 1, 2, 3}));
  ASSERT_EQ(page["next_after"], 3);
  page = Query("?limit=4&after=3");
  EXPECT_EQ(Indices(page), (std::vector<int64_t>{4, 5, 6, 7}));
  ASSERT_EQ(page["next_after"], 7);
  page = Query("?limit=4&after=7");
  EXPECT_EQ(Indices(page), (std::vector<int64_t>{8, 9}));
  EXPECT_TRUE(page["next_after"].is_null());
}

TEST_F(LogEntriesTest, RefusesUnknownNamesAndMalformedParameters) {
  ExpectError(Get("/api/v1/log/entries?key=missing"), 404, "not_found");
  ExpectError(Get("/api/v1/log/entries?account=nobody"), 404, "not_found");
  for (const char* query :
       {"?action=signing", "?action=Sign", "?action=", "?since=2027-01-15", "?since=yesterday",
        "?until=2027-02-30T00:00:00Z", "?since=2027-01-15T09:20:00+01:00", "?limit=0",
        "?limit=1001", "?after=-1", "?after=x", "?keys=release", "?key=release&key=nightly"}) {
    ExpectError(Get("/api/v1/log/entries" + std::string(query)), 400, "invalid_request");
  }
}

// ---- monitoring glue ----

TEST(LogMonitoringTest, LogsEveryFailedCheckAndTheFirstPassAfterThem) {
  std::vector<std::string> lines;
  LogSink previous = SetLogSink([&](std::string_view line) { lines.emplace_back(line); });
  bool failing = false;
  audit::LogCheck ok;
  ok.time = kT0;
  LogCheckLine(ok, failing);
  audit::LogCheck altered = ok;
  altered.error = DataLoss("entry 3 does not match its leaf hash");
  LogCheckLine(altered, failing);
  LogCheckLine(altered, failing);
  audit::LogCheck unreadable = ok;
  unreadable.error = Unavailable("database is locked");
  LogCheckLine(unreadable, failing);
  LogCheckLine(ok, failing);
  LogCheckLine(ok, failing);
  SetLogSink(std::move(previous));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("signet error: audit: the audit log does not verify (alert; "
                          "run `signet audit verify`): entry 3 does not match"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("entry 3"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("signet error: audit: the audit log could not be checked: "),
            std::string::npos)
      << lines[2];
  EXPECT_NE(lines[3].find("signet warning: audit: the audit log's check passes again"),
            std::string::npos)
      << lines[3];
  EXPECT_FALSE(failing);
}

TEST(LogMonitoringTest, RecordsTheLastCheckInMetrics) {
  Metrics metrics;
  audit::LogCheck ok;
  ok.time = kT0 + 30s;
  ok.log_size = 12;
  ok.checkpoint_size = 10;
  ok.checkpoint_time = kT0;
  RecordLogMetrics(ok, metrics);
  EXPECT_EQ(metrics.Value("signet_log_size"), 12);
  EXPECT_EQ(metrics.Value("signet_log_checkpoint_size"), 10);
  EXPECT_EQ(metrics.Value("signet_log_checkpoint_age_seconds"), 30);
  EXPECT_EQ(metrics.Value("signet_log_verify_ok"), 1);
  EXPECT_EQ(metrics.Value("signet_log_verify_failures_total"), 0);
  EXPECT_NE(metrics.RenderPrometheus().find("signet_log_verify_failures_total 0"),
            std::string::npos);

  audit::LogCheck failed = ok;
  failed.error = DataLoss("entry 3 does not match");
  RecordLogMetrics(failed, metrics);
  RecordLogMetrics(failed, metrics);
  EXPECT_EQ(metrics.Value("signet_log_verify_ok"), 0);
  EXPECT_EQ(metrics.Value("signet_log_verify_failures_total"), 2);

  audit::LogCheck unreadable;  // the store could not be read: sizes stay as they were
  unreadable.time = kT0 + 60s;
  unreadable.error = Unavailable("database is locked");
  RecordLogMetrics(unreadable, metrics);
  EXPECT_EQ(metrics.Value("signet_log_size"), 12);
  EXPECT_EQ(metrics.Value("signet_log_checkpoint_size"), 10);
  EXPECT_EQ(metrics.Value("signet_log_verify_failures_total"), 3);
  EXPECT_EQ(metrics.Value("signet_log_data_loss_total"), 2);  // the outage is not an alarm
}

TEST_F(LogRoutesTest, HealthCheckFollowsTheMonitor) {
  audit::LogMonitor monitor(*store_, clock_);
  HealthCheck check = LogHealthCheck(monitor);
  EXPECT_EQ(check.name, "log");
  EXPECT_FALSE(check.check().ok());  // never checked
  BuildLog();
  ASSERT_TRUE(monitor.CheckOnce().ok());
  EXPECT_TRUE(check.check().ok());
}

}  // namespace
}  // namespace signet::server::log
