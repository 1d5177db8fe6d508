#include "service/key_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "common/encoding.h"
#include "service/testing/fakes.h"

namespace signet::service {
namespace {

// Keeps every event; can be told to fail for one action.
class RecordingSink final : public AuditSink {
 public:
  Status Record(const AuditEvent& event) override {
    if (fail_action_ && *fail_action_ == event.action) return Unavailable("log unavailable");
    events_.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const AuditEvent& event, const AuditedChange& change) override {
    if (fail_action_ && *fail_action_ == event.action) return Unavailable("log unavailable");
    if (auto during = std::exchange(during_change_, nullptr)) during();
    SIGNET_ASSIGN_OR_RETURN(AuditEvent recorded, testing::MakeChange(event, change));
    events_.push_back(std::move(recorded));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in); the check's effect is what is tested.
  Status RecordIf(const AuditEvent& event, const AuditCheck& check) override {
    SIGNET_TRY(check());
    return Record(event);
  }
  void FailFor(std::optional<AuditAction> action) { fail_action_ = action; }
  // `during` runs inside the next RecordChange, before the change is made.
  void DuringNextChange(std::function<void()> during) { during_change_ = std::move(during); }
  const std::vector<AuditEvent>& events() const { return events_; }
  const AuditEvent& last() const { return events_.back(); }

 private:
  std::vector<AuditEvent> events_;
  std::optional<AuditAction> fail_action_;
  std::function<void()> during_change_;
};

class KeyServiceTest : public ::testing::Test {
 protected:
  KeyServiceTest()
      : clock_(FromUnixSeconds(1'800'000'000)),
        service_(keys_, store_, clock_, audit_, TokenIdentity{"fake-token", "0001"}) {
    actor_.account_id = "local";
    actor_.account_name = "operator";
    actor_.auth_method = AuthMethod::kLocalCli;
  }

  testing::FakeKeyStore keys_;
  testing::MemoryStore store_;
  FakeClock clock_;
  RecordingSink audit_;
  Actor actor_;
  KeyService service_;
};

TEST_F(KeyServiceTest, CreateRecordsKeyWithItsPublicKey) {
  auto k = service_.CreateKey(actor_, "release", KeyAlgorithm::kEcP256, "alice");
  ASSERT_TRUE(k.ok()) << k.error().message();
  EXPECT_EQ(k->name, "release");
  EXPECT_EQ(k->algorithm, "ec-p256");
  EXPECT_EQ(k->state, store::KeyState::kActive);
  EXPECT_EQ(k->owner, "alice");
  EXPECT_EQ(k->token_serial, "0001");
  EXPECT_EQ(k->created_at, clock_.Now());
  auto shown = service_.ShowKey("release");
  ASSERT_TRUE(shown.ok());
  EXPECT_TRUE(shown->present_in_hsm);
  EXPECT_TRUE(shown->public_key_matches_hsm);
}

TEST_F(KeyServiceTest, DuplicateNameGeneratesNothing) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  auto dup = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP384, "x");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(keys_.KeyCount(), 1u);
}

TEST_F(KeyServiceTest, FailedInsertDestroysGeneratedKey) {
  store_.FailNextInsert(Unavailable("disk gone"));
  auto k = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(keys_.KeyCount(), 0u);
  EXPECT_TRUE(store_.ListKeys()->empty());
}

TEST_F(KeyServiceTest, FailedInsertAndFailedUndoSaysBoth) {
  store_.FailNextInsert(Unavailable("disk gone"));
  keys_.FailNextDestroy(Unavailable("hsm gone"));
  auto k = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message().find("disk gone"), std::string::npos);
  EXPECT_NE(k.error().message().find("hsm gone"), std::string::npos);
}

TEST_F(KeyServiceTest, RejectsBadNamesAndAlgorithms) {
  EXPECT_EQ(service_.CreateKey(actor_, "", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey(actor_, "-lead", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey(actor_, "a b", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey(actor_, std::string(65, 'a'), KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey(actor_, "log", KeyAlgorithm::kEd25519, "x").error().code(),
            ErrorCode::kInvalidArgument);
  // A name shaped like a key id could stand for another key where ids and names are both taken.
  EXPECT_EQ(
      service_.CreateKey(actor_, "k_0123456789abcdef", KeyAlgorithm::kEcP256, "x").error().code(),
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(keys_.KeyCount(), 0u);
  for (const char* fine : {"k_0123456789ABCDEF", "k_0123456789abcde", "k_0123456789abcdefa"}) {
    EXPECT_TRUE(service_.CreateKey(actor_, fine, KeyAlgorithm::kEcP256, "x").ok()) << fine;
  }
}

TEST_F(KeyServiceTest, DisableEnableTransitions) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  clock_.Advance(std::chrono::seconds(5));
  auto d = service_.DisableKey(actor_, "a");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, store::KeyState::kDisabled);
  EXPECT_EQ(d->updated_at, clock_.Now());
  EXPECT_EQ(service_.DisableKey(actor_, "a").error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(service_.CreateCsr(actor_, "a", "/CN=x").error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(service_.EnableKey(actor_, "a").ok());
  EXPECT_EQ(service_.EnableKey(actor_, "a").error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(KeyServiceTest, DestroyMarksThenRemovesAndIsRepeatable) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  keys_.FailNextDestroy(Unavailable("hsm busy"));
  auto first = service_.DestroyKey(actor_, "a");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(KeyService::DestroyPending(first.error())) << first.error().message();
  EXPECT_EQ(store_.GetKeyByName("a")->state, store::KeyState::kDestroyed);
  EXPECT_EQ(keys_.KeyCount(), 1u);
  // The log shows the mark, then that the HSM kept the key material.
  ASSERT_GE(audit_.events().size(), 2u);
  const AuditEvent& mark = audit_.events()[audit_.events().size() - 2];
  EXPECT_EQ(mark.action, AuditAction::kKeyDestroy);
  EXPECT_EQ(mark.outcome, "success");
  EXPECT_EQ(mark.details.at("hsm"), "pending");  // the mark does not claim the material is gone
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyDestroy);
  EXPECT_NE(audit_.last().outcome.find("hsm busy"), std::string::npos) << audit_.last().outcome;
  // Until then, key show says the material is still there.
  auto pending = service_.ShowKey("a");
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->present_in_hsm);
  ASSERT_TRUE(service_.DestroyKey(actor_, "a").ok());
  EXPECT_EQ(keys_.KeyCount(), 0u);
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyDestroy);
  EXPECT_EQ(audit_.last().outcome, "success");
  EXPECT_EQ(audit_.last().details.at("repeated"), "true");
  EXPECT_EQ(audit_.last().details.at("hsm"), "removed");
  EXPECT_EQ(service_.EnableKey(actor_, "a").error().code(), ErrorCode::kFailedPrecondition);
  auto shown = service_.ShowKey("a");
  ASSERT_TRUE(shown.ok());
  EXPECT_FALSE(shown->present_in_hsm);
  EXPECT_EQ(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kAlreadyExists);
}

// What a crash between generation and record leaves on the token is found, and only that.
TEST_F(KeyServiceTest, UnrecordedKeysAreTheOnesNoRecordNames) {
  ASSERT_TRUE(service_.CreateKey(actor_, "release", KeyAlgorithm::kEcP256, "x").ok());
  ASSERT_TRUE(service_.CreateKey(actor_, "old", KeyAlgorithm::kEcP384, "x").ok());
  keys_.FailNextDestroy(Unavailable("hsm busy"));
  ASSERT_FALSE(service_.DestroyKey(actor_, "old").ok());  // recorded, still in the HSM
  auto log_key = keys_.GenerateKey(KeyAlgorithm::kEd25519, "signet-log-checkpoint");
  ASSERT_TRUE(log_key.ok());
  ASSERT_TRUE(store_
                  .InsertLogKey({"example.org/log", "0001", HexEncode(log_key->id.bytes),
                                 Bytes(32, 7), clock_.Now()})
                  .ok());
  auto orphan = keys_.GenerateKey(KeyAlgorithm::kRsa3072, "crashed\nfake line");
  ASSERT_TRUE(orphan.ok());

  auto unrecorded = service_.ListUnrecordedKeys();
  ASSERT_TRUE(unrecorded.ok()) << unrecorded.error().message();
  ASSERT_EQ(unrecorded->size(), 1u);
  EXPECT_EQ(unrecorded->at(0).hsm_key_id, HexEncode(orphan->id.bytes));
  EXPECT_EQ(unrecorded->at(0).algorithm, "rsa-3072");
  EXPECT_EQ(unrecorded->at(0).label.find('\n'), std::string::npos) << "label not escaped";
  EXPECT_NE(unrecorded->at(0).label.find("crashed"), std::string::npos);
}

// A listing that starts while a key is between generation and record waits for the record, and
// so never offers that key for destruction.
TEST_F(KeyServiceTest, AKeyBeingCreatedIsNotUnrecorded) {
  std::optional<Result<std::vector<UnrecordedKey>>> seen;
  std::atomic<bool> listed{false};
  std::thread lister;
  audit_.DuringNextChange([&] {
    lister = std::thread([&] {
      seen = service_.ListUnrecordedKeys();
      listed = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_FALSE(listed.load()) << "the listing ran while the key was being recorded";
  });
  ASSERT_TRUE(service_.CreateKey(actor_, "release", KeyAlgorithm::kEcP256, "x").ok());
  lister.join();
  ASSERT_TRUE(seen.has_value() && seen->ok());
  EXPECT_TRUE((*seen)->empty()) << "a key between generation and record was listed";
  EXPECT_TRUE(service_.ShowKey("release")->present_in_hsm);
}

// Another process may destroy the new key as unrecorded between its generation and its record:
// the record does not stay active over nothing, and the log says what happened.
TEST_F(KeyServiceTest, AKeyWhoseMaterialVanishesDuringCreationIsMarkedDestroyed) {
  audit_.DuringNextChange([&] {
    auto all = keys_.ListKeys();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 1u);
    ASSERT_TRUE(keys_.DestroyKey(all->at(0).id).ok());  // the other process's destroy
  });
  auto k = service_.CreateKey(actor_, "release", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(k.error().message().find("left the HSM"), std::string::npos) << k.error().message();
  EXPECT_EQ(store_.GetKeyByName("release")->state, store::KeyState::kDestroyed);
  ASSERT_GE(audit_.events().size(), 2u);
  EXPECT_EQ(audit_.events()[audit_.events().size() - 2].action, AuditAction::kKeyCreate);
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyDestroy);
  EXPECT_EQ(audit_.last().outcome, "success");
  EXPECT_NE(audit_.last().details.at("reason").find("while the key was being created"),
            std::string::npos);
}

// A label is bytes: whatever it holds comes out as printable ASCII (valid UTF-8 for JSON, no
// control sequence for a terminal).
TEST_F(KeyServiceTest, UnrecordedLabelsArePrintable) {
  ASSERT_TRUE(keys_.GenerateKey(KeyAlgorithm::kEcP256, std::string("a\x9b[2J\xff\\b\n", 9)).ok());
  auto unrecorded = service_.ListUnrecordedKeys();
  ASSERT_TRUE(unrecorded.ok());
  ASSERT_EQ(unrecorded->size(), 1u);
  EXPECT_EQ(unrecorded->at(0).label, "a\\x9b[2J\\xff\\x5cb\\x0a");
}

TEST_F(KeyServiceTest, AnUnrecordedKeyIsNotDestroyedWhenTheLogCannotSaySo) {
  auto orphan = keys_.GenerateKey(KeyAlgorithm::kEcP256, "left");
  ASSERT_TRUE(orphan.ok());
  audit_.FailFor(AuditAction::kKeyDestroy);
  auto refused = service_.DestroyUnrecordedKey(actor_, HexEncode(orphan->id.bytes));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(keys_.KeyCount(), 1u);
}

TEST_F(KeyServiceTest, DestroyUnrecordedRecordsFirstAndTouchesNothingElse) {
  ASSERT_TRUE(service_.CreateKey(actor_, "release", KeyAlgorithm::kEcP256, "x").ok());
  auto orphan = keys_.GenerateKey(KeyAlgorithm::kEcP256, "release");
  ASSERT_TRUE(orphan.ok());
  const std::string hex = HexEncode(orphan->id.bytes);
  const std::string recorded_hex = store_.GetKeyByName("release")->hsm_key_id;

  // A recorded key is not "unrecorded", whatever its label; refused and logged.
  auto refused = service_.DestroyUnrecordedKey(actor_, recorded_hex);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("key destroy"), std::string::npos);
  EXPECT_EQ(audit_.last().object, "hsm:" + recorded_hex);
  EXPECT_NE(audit_.last().outcome, "success");
  EXPECT_EQ(service_.DestroyUnrecordedKey(actor_, "ff00").error().code(), ErrorCode::kNotFound);
  for (const char* bad : {"", "zz", "abc", "hsm:00"}) {
    EXPECT_EQ(service_.DestroyUnrecordedKey(actor_, bad).error().code(),
              ErrorCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(keys_.KeyCount(), 2u);

  // The HSM fails once: the destruction was recorded, then the failure; nothing is gone.
  keys_.FailNextDestroy(Unavailable("hsm busy"));
  const size_t before = audit_.events().size();
  auto failed = service_.DestroyUnrecordedKey(actor_, hex);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), ErrorCode::kUnavailable);
  ASSERT_EQ(audit_.events().size(), before + 2);
  EXPECT_EQ(audit_.events()[before].outcome, "success");  // recorded before the HSM was asked
  EXPECT_EQ(audit_.events()[before].object, "hsm:" + hex);
  EXPECT_NE(audit_.events()[before + 1].outcome.find("hsm busy"), std::string::npos);
  EXPECT_EQ(audit_.events()[before + 1].object, "hsm:" + hex);
  EXPECT_EQ(keys_.KeyCount(), 2u);

  // Upper-case hex names the same key.
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto gone = service_.DestroyUnrecordedKey(actor_, upper);
  ASSERT_TRUE(gone.ok()) << gone.error().message();
  EXPECT_EQ(gone->hsm_key_id, hex);
  EXPECT_EQ(gone->label, "release");
  const AuditEvent& e = audit_.last();
  EXPECT_EQ(e.action, AuditAction::kKeyDestroy);
  EXPECT_EQ(e.outcome, "success");
  EXPECT_EQ(e.object, "hsm:" + hex);
  EXPECT_EQ(e.details.at("unrecorded"), "true");
  EXPECT_EQ(e.details.at("hsm_key_id"), hex);
  EXPECT_EQ(e.details.at("algorithm"), "ec-p256");
  EXPECT_EQ(e.details.at("hsm"), "removed");  // after the HSM step; the one before says "pending"
  const AuditEvent& before_hsm = audit_.events()[audit_.events().size() - 2];
  EXPECT_EQ(before_hsm.object, "hsm:" + hex);
  EXPECT_EQ(before_hsm.details.at("hsm"), "pending");
  EXPECT_EQ(keys_.KeyCount(), 1u);
  EXPECT_TRUE(service_.ShowKey("release")->present_in_hsm);
  EXPECT_TRUE(service_.ListUnrecordedKeys()->empty());
}

// A record names its token; a service with another token open must not act on it. Destroying
// there would find no object, succeed, and leave the key alive on its own token.
TEST_F(KeyServiceTest, AKeyOnAnotherTokenIsNeitherDestroyedNorCertifiedNorShownAsGone) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  KeyService elsewhere(keys_, store_, clock_, audit_, TokenIdentity{"other-token", "0002"});
  auto destroyed = elsewhere.DestroyKey(actor_, "a");
  ASSERT_FALSE(destroyed.ok());
  EXPECT_EQ(destroyed.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(destroyed.error().message().find("is on token 'fake-token' (serial 0001)"),
            std::string::npos)
      << destroyed.error().message();
  EXPECT_EQ(store_.GetKeyByName("a")->state, store::KeyState::kActive);
  EXPECT_EQ(keys_.KeyCount(), 1u);
  EXPECT_EQ(elsewhere.CreateCsr(actor_, "a", "/CN=x").error().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(elsewhere.ImportCertificateChain(actor_, "a", "anything").error().code(),
            ErrorCode::kFailedPrecondition);
  auto shown = elsewhere.ShowKey("a");
  ASSERT_TRUE(shown.ok());
  EXPECT_FALSE(shown->on_open_token);
  EXPECT_TRUE(service_.ShowKey("a")->on_open_token);
}

// A module may report a blank serial; the label still tells the tokens apart.
TEST_F(KeyServiceTest, TokensWithBlankSerialsAreToldApartByLabel) {
  KeyService on_a(keys_, store_, clock_, audit_, TokenIdentity{"token-a", ""});
  KeyService on_b(keys_, store_, clock_, audit_, TokenIdentity{"token-b", ""});
  ASSERT_TRUE(on_a.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  auto destroyed = on_b.DestroyKey(actor_, "a");
  ASSERT_FALSE(destroyed.ok());
  EXPECT_EQ(destroyed.error().code(), ErrorCode::kFailedPrecondition)
      << destroyed.error().message();
  EXPECT_EQ(store_.GetKeyByName("a")->state, store::KeyState::kActive);
  EXPECT_EQ(keys_.KeyCount(), 1u);
  EXPECT_FALSE(on_b.ShowKey("a")->on_open_token);
  EXPECT_TRUE(on_a.ShowKey("a")->on_open_token);
  ASSERT_TRUE(on_a.DestroyKey(actor_, "a").ok());
}

// A lost HSM login is the service's failure: Unavailable, never Unauthenticated (which the API
// would answer 401 invalid_token, making the client drop a valid token).
TEST_F(KeyServiceTest, AnHsmLoginLostIsUnavailableNotUnauthenticated) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  keys_.FailNextSign(Unauthenticated("C_SignInit returned CKR_USER_NOT_LOGGED_IN"));
  auto csr = service_.CreateCsr(actor_, "a", "/CN=x");
  ASSERT_FALSE(csr.ok());
  EXPECT_EQ(csr.error().code(), ErrorCode::kUnavailable) << csr.error().message();
  keys_.FailNextDestroy(Unauthenticated("C_DestroyObject returned CKR_USER_NOT_LOGGED_IN"));
  auto destroyed = service_.DestroyKey(actor_, "a");
  ASSERT_FALSE(destroyed.ok());
  EXPECT_EQ(destroyed.error().code(), ErrorCode::kUnavailable) << destroyed.error().message();
  EXPECT_TRUE(KeyService::DestroyPending(destroyed.error()));
}

// A refusal that cannot be logged still stands; why the log failed is for the operator only.
TEST_F(KeyServiceTest, ARefusalTheLogCannotTakeDoesNotQuoteTheLogsError) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  ASSERT_TRUE(service_.DisableKey(actor_, "a").ok());
  audit_.FailFor(AuditAction::kKeyDisable);
  auto again = service_.DisableKey(actor_, "a");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.error().message().find("could not be logged"), std::string::npos);
  EXPECT_EQ(again.error().message().find("log unavailable"), std::string::npos)
      << again.error().message();
}

// The state is checked before the HSM signs and again after: a key disabled meanwhile gets no
// CSR, and the log shows no key_csr success.
TEST_F(KeyServiceTest, AKeyDisabledWhileTheHsmSignsGetsNoCsr) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  keys_.DuringNextSign([this] { ASSERT_TRUE(service_.DisableKey(actor_, "a").ok()); });
  auto csr = service_.CreateCsr(actor_, "a", "/CN=x");
  ASSERT_FALSE(csr.ok());
  EXPECT_EQ(csr.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(csr.error().message().find("became disabled meanwhile"), std::string::npos)
      << csr.error().message();
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyCsr);
  EXPECT_NE(audit_.last().outcome, "success");
}

TEST_F(KeyServiceTest, ImportNeedsTheKeyMaterialInTheHsm) {
  auto k = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x");
  ASSERT_TRUE(k.ok());
  auto id = HexDecode(k->hsm_key_id);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(keys_.DestroyKey(hsm::HsmKeyId{*id}).ok());  // removed behind the service's back
  auto r = service_.ImportCertificateChain(actor_, "a", "anything");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("not in the HSM"), std::string::npos) << r.error().message();
}

// A token swapped for another holding a different key under the same id: the chain is checked
// against both public keys, so it is refused however well it fits the record.
TEST_F(KeyServiceTest, ImportRefusesWhenTheHsmsPublicKeyDiffersFromTheRecord) {
  auto k = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x");
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(keys_.ReplaceKeyMaterial(hsm::HsmKeyId{HexDecode(k->hsm_key_id).value()}));
  auto shown = service_.ShowKey("a");
  ASSERT_TRUE(shown.ok());
  EXPECT_TRUE(shown->present_in_hsm);
  EXPECT_FALSE(shown->public_key_matches_hsm);
  auto r = service_.ImportCertificateChain(actor_, "a", "anything");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("differs"), std::string::npos) << r.error().message();
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyImportCert);
  EXPECT_NE(audit_.last().outcome, "success");
  EXPECT_TRUE(store_.GetKeyByName("a")->certificate_chain_pem.empty());
}

// The same for a CSR: a clear refusal, not the CSR's failed self-check (a 500).
TEST_F(KeyServiceTest, CsrRefusedWhenTheHsmsPublicKeyDiffersFromTheRecord) {
  auto k = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x");
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(keys_.ReplaceKeyMaterial(hsm::HsmKeyId{HexDecode(k->hsm_key_id).value()}));
  auto csr = service_.CreateCsr(actor_, "a", "/CN=x");
  ASSERT_FALSE(csr.ok());
  EXPECT_EQ(csr.error().code(), ErrorCode::kFailedPrecondition) << csr.error().message();
  EXPECT_NE(csr.error().message().find("differs from the stored one"), std::string::npos)
      << csr.error().message();
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyCsr);
  EXPECT_NE(audit_.last().outcome, "success");
}

TEST(CheckCodeSigningLeafTest, RefusesWhatNoSigningKeysCertificateMayBe) {
  const TimePoint now = FromUnixSeconds(1'800'000'000);
  pki::CertificateChain good;
  good.not_before = now + std::chrono::hours(24);  // not yet valid: a renewal imported ahead
  good.not_after = now + std::chrono::hours(24 * 365);
  good.leaf_extended_key_usage = std::vector<std::string>{"1.3.6.1.5.5.7.3.3"};
  good.leaf_key_usage = pki::kKeyUsageDigitalSignature;
  good.leaf_key_usage_critical = true;
  EXPECT_TRUE(KeyService::CheckCodeSigningLeaf(good, now).ok());
  auto refused = [&](pki::CertificateChain chain, std::string_view says) {
    Status s = KeyService::CheckCodeSigningLeaf(chain, now);
    ASSERT_FALSE(s.ok()) << says;
    EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message().find(says), std::string::npos) << s.error().message();
  };
  pki::CertificateChain expired = good;
  expired.not_after = now;
  expired.not_after_text = "20270115080000Z";
  refused(expired, "expired at 20270115080000Z");
  pki::CertificateChain far_ahead = good;
  far_ahead.not_before = now + std::chrono::hours(24) + std::chrono::seconds(1);
  far_ahead.not_before_text = "20270116080001Z";
  refused(far_ahead, "not valid before 20270116080001Z");
  pki::CertificateChain never = good;
  never.not_before = good.not_after;
  refused(never, "is never valid");
  pki::CertificateChain ca = good;
  ca.leaf_is_ca = true;
  refused(ca, "is a CA certificate");
  pki::CertificateChain no_eku = good;
  no_eku.leaf_extended_key_usage.reset();
  refused(no_eku, "lacks the codeSigning extended key usage");
  pki::CertificateChain tls = good;
  tls.leaf_extended_key_usage = std::vector<std::string>{"1.3.6.1.5.5.7.3.1"};
  refused(tls, "lacks the codeSigning");
  pki::CertificateChain any = good;
  any.leaf_extended_key_usage->push_back("2.5.29.37.0");
  refused(any, "anyExtendedKeyUsage");
  pki::CertificateChain both = good;
  both.leaf_extended_key_usage->push_back("1.3.6.1.5.5.7.3.1");
  refused(both, "serverAuth");
  pki::CertificateChain no_ku = good;
  no_ku.leaf_key_usage.reset();
  refused(no_ku, "has no keyUsage extension");
  pki::CertificateChain encipher_only = good;
  encipher_only.leaf_key_usage = 0x20;  // keyEncipherment
  refused(encipher_only, "does not allow digitalSignature");
  pki::CertificateChain ca_bits = good;
  *ca_bits.leaf_key_usage |= pki::kKeyUsageKeyCertSign;
  refused(ca_bits, "keyCertSign or cRLSign");
  pki::CertificateChain crl_bits = good;
  *crl_bits.leaf_key_usage |= pki::kKeyUsageCrlSign;
  refused(crl_bits, "keyCertSign or cRLSign");
  pki::CertificateChain not_critical = good;
  not_critical.leaf_key_usage_critical = false;
  refused(not_critical, "not marked critical");
}

TEST_F(KeyServiceTest, CsrIsSignedByTheKey) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP384, "x").ok());
  auto csr = service_.CreateCsr(actor_, "a", "/CN=Example/O=Example Ltd/C=GB");
  ASSERT_TRUE(csr.ok()) << csr.error().message();
  EXPECT_NE(csr->find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  EXPECT_EQ(service_.CreateCsr(actor_, "a", "no-slash").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateCsr(actor_, "missing", "/CN=x").error().code(), ErrorCode::kNotFound);
}

TEST_F(KeyServiceTest, ImportRefusesGarbageAndKeepsOldChain) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  auto r = service_.ImportCertificateChain(actor_, "a", "not a certificate");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store_.GetKeyByName("a")->certificate_chain_pem.empty());
}

TEST_F(KeyServiceTest, EveryChangeIsRecordedWithItsActor) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  ASSERT_TRUE(service_.CreateCsr(actor_, "a", "/CN=Example").ok());
  ASSERT_TRUE(service_.DisableKey(actor_, "a").ok());
  ASSERT_TRUE(service_.EnableKey(actor_, "a").ok());
  ASSERT_TRUE(service_.DestroyKey(actor_, "a").ok());
  // A destruction is two entries: the mark ("hsm": "pending"), then the key material gone.
  std::vector<AuditAction> want = {AuditAction::kKeyCreate,  AuditAction::kKeyCsr,
                                   AuditAction::kKeyDisable, AuditAction::kKeyEnable,
                                   AuditAction::kKeyDestroy, AuditAction::kKeyDestroy};
  ASSERT_EQ(audit_.events().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(audit_.events()[i].action, want[i]);
    EXPECT_EQ(audit_.events()[i].object, "a");
    EXPECT_EQ(audit_.events()[i].outcome, "success");
    EXPECT_EQ(audit_.events()[i].actor.account_name, "operator");
  }
  EXPECT_EQ(audit_.events()[0].details.at("algorithm"), "ec-p256");
}

TEST_F(KeyServiceTest, RefusalsAreRecordedWithTheReason) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  ASSERT_FALSE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyCreate);
  EXPECT_NE(audit_.last().outcome.find("already exists"), std::string::npos);
  ASSERT_FALSE(service_.EnableKey(actor_, "a").ok());
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyEnable);
  EXPECT_NE(audit_.last().outcome, "success");
}

TEST_F(KeyServiceTest, CreateThatCannotBeLoggedLeavesNoUsableKey) {
  audit_.FailFor(AuditAction::kKeyCreate);
  auto k = service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(keys_.KeyCount(), 0u);
  // The record commits with its log entry, so there is none, not even a retired one.
  EXPECT_EQ(store_.GetKeyByName("a").error().code(), ErrorCode::kNotFound);
}

TEST_F(KeyServiceTest, StateChangeThatCannotBeLoggedIsUndone) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  audit_.FailFor(AuditAction::kKeyDisable);
  EXPECT_FALSE(service_.DisableKey(actor_, "a").ok());
  EXPECT_EQ(store_.GetKeyByName("a")->state, store::KeyState::kActive);
  audit_.FailFor(AuditAction::kKeyDestroy);
  EXPECT_FALSE(service_.DestroyKey(actor_, "a").ok());
  EXPECT_EQ(store_.GetKeyByName("a")->state, store::KeyState::kActive);
  EXPECT_EQ(keys_.KeyCount(), 1u);
}

TEST_F(KeyServiceTest, CsrThatCannotBeLoggedIsNotReturned) {
  ASSERT_TRUE(service_.CreateKey(actor_, "a", KeyAlgorithm::kEcP256, "x").ok());
  audit_.FailFor(AuditAction::kKeyCsr);
  EXPECT_FALSE(service_.CreateCsr(actor_, "a", "/CN=Example").ok());
}

// An admin demoted or logged out while the request ran changes nothing: the session the request
// came with is re-checked inside the change's transaction. The local CLI has no session.
TEST_F(KeyServiceTest, AdminChangesCommitOnlyWhileTheSessionIsStillAnAdmins) {
  ASSERT_TRUE(service_.CreateKey(actor_, "release", KeyAlgorithm::kEcP256, "x").ok());
  const Bytes token_hash(32, 0x5a);
  Result<Caller> session =
      testing::InsertAdminSession(store_, "root", token_hash, clock_.Now(), std::chrono::hours(1));
  ASSERT_TRUE(session.ok()) << session.error().message();
  const Caller admin = *session;
  const std::string root_id = admin.actor.account_id;
  const store::RoleSet admin_roles = admin.actor.roles;
  const auto state = [&] { return store_.GetKeyByName("release")->state; };

  ASSERT_TRUE(service_.DisableKey(admin, "release").ok());  // a live admin session
  audit_.DuringNextChange([&] {
    ASSERT_TRUE(
        store_.SetAccountRoles(root_id, store::RoleSet{store::Role::kAuditor}, clock_.Now()).ok());
  });
  Result<store::KeyRecord> enabled = service_.EnableKey(admin, "release");
  ASSERT_FALSE(enabled.ok());
  EXPECT_EQ(enabled.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(state(), store::KeyState::kDisabled);
  EXPECT_EQ(audit_.last().action, AuditAction::kKeyEnable);
  EXPECT_NE(audit_.last().outcome, "success");

  ASSERT_TRUE(store_.SetAccountRoles(root_id, admin_roles, clock_.Now()).ok());
  audit_.DuringNextChange(
      [&] { ASSERT_TRUE(store_.RevokeBearerToken(token_hash, clock_.Now()).ok()); });
  Result<store::KeyRecord> created = service_.CreateKey(admin, "other", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(store_.GetKeyByName("other").ok());
  EXPECT_EQ(keys_.KeyCount(), 1u);  // the generated key was undone
  EXPECT_EQ(service_.DestroyKey(admin, "release").error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(state(), store::KeyState::kDisabled);

  EXPECT_TRUE(service_.EnableKey(actor_, "release").ok());  // no session to re-check

  // A repeated destroy (the HSM kept the material the first time) is checked as well: a session
  // that ended meanwhile removes nothing.
  keys_.FailNextDestroy(Unavailable("hsm busy"));
  ASSERT_FALSE(service_.DestroyKey(actor_, "release").ok());
  ASSERT_EQ(state(), store::KeyState::kDestroyed);
  ASSERT_EQ(keys_.KeyCount(), 1u);
  Result<store::KeyRecord> repeated = service_.DestroyKey(admin, "release");
  ASSERT_FALSE(repeated.ok());
  EXPECT_EQ(repeated.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(keys_.KeyCount(), 1u);
  EXPECT_TRUE(service_.DestroyKey(actor_, "release").ok());
  EXPECT_EQ(keys_.KeyCount(), 0u);
}

}  // namespace
}  // namespace signet::service
