// Pkcs11SecretSealer against a real SoftHSM2 token in a temporary folder. The key's protection is
// checked both through the sealer and from outside (RawToken).
#include "hsm/pkcs11/pkcs11_secret_sealer.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/testing/raw_token.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"

namespace signet::hsm {
namespace {

namespace hsmt = signet::hsm::testing;

class SecretSealerTest : public ::testing::Test {
 protected:
  static constexpr const char* kLabel = "signet-sealer";

  static void SetUpTestSuite() {
    hsmt::SoftHsmSandbox& sandbox = hsmt::SharedSoftHsmSandbox();
    Result<Pkcs11Options> options = sandbox.CreateToken(kLabel);
    if (!options.ok()) return Abandon(options.error());
    Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(*options));
    if (!store.ok()) return Abandon(store.error());
    store_ = std::move(*store);
    Result<std::unique_ptr<Pkcs11SecretSealer>> sealer = Pkcs11SecretSealer::Open(*store_);
    if (!sealer.ok()) return Abandon(sealer.error());
    sealer_ = std::move(*sealer);
    Result<std::unique_ptr<hsmt::RawToken>> raw =
        hsmt::RawToken::Open(hsmt::kSoftHsmModulePath, kLabel);
    if (!raw.ok()) return Abandon(raw.error());
    raw_ = std::move(*raw);
  }

  static void TearDownTestSuite() {
    raw_.reset();
    sealer_.reset();
    store_.reset();
  }

  static void Abandon(const Error& error) {
    setup_error_ = error.message();
    sealer_.reset();
    store_.reset();
  }

  void SetUp() override {
    if (!sealer_ || !raw_) FAIL() << "setup: " << setup_error_;
  }

  // The sealing keys as the test's own session sees them.
  static std::vector<CK_OBJECT_HANDLE> FindSealingKeysRaw(const internal::Session& session) {
    CK_OBJECT_CLASS object_class = CKO_SECRET_KEY;
    std::string label(kDefaultSealingKeyLabel);
    std::array<CK_ATTRIBUTE, 2> search = {
        CK_ATTRIBUTE{CKA_CLASS, &object_class, sizeof(object_class)},
        CK_ATTRIBUTE{CKA_LABEL, label.data(), label.size()}};
    std::vector<CK_OBJECT_HANDLE> found;
    EXPECT_EQ(internal::FindObjects(raw_->module(), session.get(), search, 10, &found), CKR_OK);
    return found;
  }

  static inline std::unique_ptr<Pkcs11KeyStore> store_;
  static inline std::unique_ptr<Pkcs11SecretSealer> sealer_;
  static inline std::unique_ptr<hsmt::RawToken> raw_;
  static inline std::string setup_error_;
};

const Bytes kSeed = ToBytes("12345678901234567890");
const Bytes kAad = ToBytes("totp-seed:a_0123456789abcdef");

TEST_F(SecretSealerTest, SealThenUnsealRoundTrips) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok()) << sealed.error().message();
  EXPECT_EQ(sealed->size(), 1 + 12 + kSeed.size() + 16);
  EXPECT_EQ((*sealed)[0], 1);
  Result<SecretBytes> opened = sealer_->Unseal(*sealed, kAad);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_TRUE(ConstantTimeEquals(opened->view(), kSeed));
}

TEST_F(SecretSealerTest, SealedFormDoesNotContainThePlaintext) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  std::string haystack = ToString(*sealed);
  EXPECT_EQ(haystack.find(ToString(kSeed)), std::string::npos);
}

TEST_F(SecretSealerTest, TwoSealsOfTheSamePlaintextDiffer) {
  Result<Bytes> a = sealer_->Seal(kSeed, kAad);
  Result<Bytes> b = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  // Different IVs, not just different tags.
  EXPECT_NE(Bytes(a->begin() + 1, a->begin() + 13), Bytes(b->begin() + 1, b->begin() + 13));
}

TEST_F(SecretSealerTest, EveryTamperedByteIsDataLoss) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    SCOPED_TRACE("byte " + std::to_string(i));
    Bytes tampered = *sealed;
    tampered[i] ^= 0x01;
    Result<SecretBytes> opened = sealer_->Unseal(tampered, kAad);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code(), ErrorCode::kDataLoss);
    if (i > 0) {
      EXPECT_EQ(opened.error().message(), "sealed secret failed its integrity check");
    }
  }
}

TEST_F(SecretSealerTest, WrongAadIsDataLoss) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  Result<SecretBytes> opened = sealer_->Unseal(*sealed, ToBytes("totp-seed:a_other"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(opened.error().message(), "sealed secret failed its integrity check");
  Result<SecretBytes> empty_aad = sealer_->Unseal(*sealed, {});
  ASSERT_FALSE(empty_aad.ok());
  EXPECT_EQ(empty_aad.error().code(), ErrorCode::kDataLoss);
}

TEST_F(SecretSealerTest, TruncatedOrExtendedBlobIsDataLoss) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  for (size_t size : {size_t{0}, size_t{1}, size_t{13}, size_t{29}, sealed->size() - 1}) {
    SCOPED_TRACE("size " + std::to_string(size));
    Result<SecretBytes> opened = sealer_->Unseal(ByteView(*sealed).first(size), kAad);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code(), ErrorCode::kDataLoss);
  }
  Bytes longer = *sealed;
  longer.push_back(0);
  Result<SecretBytes> opened = sealer_->Unseal(longer, kAad);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code(), ErrorCode::kDataLoss);
}

TEST_F(SecretSealerTest, EmptyOrOversizedPlaintextIsInvalidArgument) {
  Result<Bytes> empty = sealer_->Seal({}, kAad);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  Result<Bytes> big = sealer_->Seal(Bytes(4097, 0x41), kAad);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SecretSealerTest, SealingKeyIsSensitiveAndNonExtractable) {
  Result<KeyProtection> protection = sealer_->Protection();
  ASSERT_TRUE(protection.ok()) << protection.error().message();
  EXPECT_FALSE(protection->extractable);
  EXPECT_TRUE(protection->never_extractable);
  EXPECT_TRUE(protection->sensitive);
  EXPECT_TRUE(protection->always_sensitive);
  EXPECT_TRUE(protection->local);
  EXPECT_TRUE(protection->is_token_object);
  EXPECT_TRUE(protection->is_private_object);
}

TEST_F(SecretSealerTest, SealingKeyValueCannotBeReadAndOnlyEncrypts) {
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  std::vector<CK_OBJECT_HANDLE> found = FindSealingKeysRaw(*session);
  ASSERT_EQ(found.size(), 1u);
  CK_ATTRIBUTE value{CKA_VALUE, nullptr, 0};
  EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session->get(), found[0],
                                &value, CK_ULONG{1}),
            CKR_ATTRIBUTE_SENSITIVE);
  for (auto [type, want] :
       std::array<std::pair<CK_ATTRIBUTE_TYPE, CK_BBOOL>, 7>{{{CKA_ENCRYPT, CK_TRUE},
                                                              {CKA_DECRYPT, CK_TRUE},
                                                              {CKA_SIGN, CK_FALSE},
                                                              {CKA_VERIFY, CK_FALSE},
                                                              {CKA_WRAP, CK_FALSE},
                                                              {CKA_UNWRAP, CK_FALSE},
                                                              {CKA_DERIVE, CK_FALSE}}}) {
    SCOPED_TRACE("attribute 0x" + std::to_string(type));
    CK_BBOOL got = 0xff;
    CK_ATTRIBUTE attribute{type, &got, sizeof(got)};
    ASSERT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session->get(), found[0],
                                  &attribute, CK_ULONG{1}),
              CKR_OK);
    EXPECT_EQ(got, want);
  }
  CK_ULONG value_len = 0;
  CK_ATTRIBUTE length{CKA_VALUE_LEN, &value_len, sizeof(value_len)};
  ASSERT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session->get(), found[0],
                                &length, CK_ULONG{1}),
            CKR_OK);
  EXPECT_EQ(value_len, 32u);
}

// Creates a token object: an AES key labelled as the sealing key, with a value known to the test
// (as whoever imported it would know it). `is_private` false makes a public object.
CK_RV CreateAesKey(const hsmt::RawToken& raw, const internal::Session& session, bool is_private,
                   CK_OBJECT_HANDLE* handle) {
  CK_OBJECT_CLASS object_class = CKO_SECRET_KEY;
  CK_KEY_TYPE key_type = CKK_AES;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  CK_BBOOL private_flag = is_private ? CK_TRUE : CK_FALSE;
  Bytes value(32, 0x5a);
  std::string label(kDefaultSealingKeyLabel);
  std::array<CK_ATTRIBUTE, 10> tmpl = {
      CK_ATTRIBUTE{CKA_CLASS, &object_class, sizeof object_class},
      CK_ATTRIBUTE{CKA_KEY_TYPE, &key_type, sizeof key_type},
      CK_ATTRIBUTE{CKA_VALUE, value.data(), value.size()},
      CK_ATTRIBUTE{CKA_TOKEN, &yes, sizeof yes},
      CK_ATTRIBUTE{CKA_PRIVATE, &private_flag, sizeof private_flag},
      CK_ATTRIBUTE{CKA_SENSITIVE, &yes, sizeof yes},
      CK_ATTRIBUTE{CKA_EXTRACTABLE, &no, sizeof no},
      CK_ATTRIBUTE{CKA_ENCRYPT, &yes, sizeof yes},
      CK_ATTRIBUTE{CKA_DECRYPT, &yes, sizeof yes},
      CK_ATTRIBUTE{CKA_LABEL, label.data(), label.size()}};
  return raw.module().Call(&CK_FUNCTION_LIST::C_CreateObject, session.get(), tmpl.data(),
                           CK_ULONG{tmpl.size()}, handle);
}

// An AES key imported under the sealing key's label (its value known to whoever imported it, who
// could then open every sealed TOTP secret from a copy of the database) is refused, though it is
// sensitive and non-extractable now.
TEST_F(SecretSealerTest, AnImportedKeyUnderTheLabelIsRefused) {
  hsmt::SoftHsmSandbox& sandbox = hsmt::SharedSoftHsmSandbox();
  Result<Pkcs11Options> options = sandbox.CreateToken("imported-sealer");
  ASSERT_TRUE(options.ok()) << options.error().message();
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(*options));
  ASSERT_TRUE(store.ok()) << store.error().message();
  Result<std::unique_ptr<hsmt::RawToken>> raw =
      hsmt::RawToken::Open(hsmt::kSoftHsmModulePath, "imported-sealer");
  ASSERT_TRUE(raw.ok()) << raw.error().message();
  Result<internal::Session> session = (*raw)->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  CK_OBJECT_HANDLE imported = CK_INVALID_HANDLE;
  ASSERT_EQ(CreateAesKey(**raw, *session, /*is_private=*/true, &imported), CKR_OK);
  Result<std::unique_ptr<Pkcs11SecretSealer>> sealer = Pkcs11SecretSealer::Open(**store);
  ASSERT_FALSE(sealer.ok());
  EXPECT_EQ(sealer.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(sealer.error().message().find("not generated on the token"), std::string::npos)
      << sealer.error().message();
}

// A public object under the label (a session that never logged in can make one) neither shadows
// the key nor stops sealing.
TEST_F(SecretSealerTest, APublicObjectUnderTheLabelIsNotUsed) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok()) << sealed.error().message();
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  CK_OBJECT_HANDLE shadow = CK_INVALID_HANDLE;
  ASSERT_EQ(CreateAesKey(*raw_, *session, /*is_private=*/false, &shadow), CKR_OK);
  Result<SecretBytes> opened = sealer_->Unseal(*sealed, kAad);
  Result<Bytes> again = sealer_->Seal(kSeed, kAad);
  raw_->module().Call(&CK_FUNCTION_LIST::C_DestroyObject, session->get(), shadow);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(ToString(ByteView(opened->data(), opened->size())), ToString(kSeed));
  EXPECT_TRUE(again.ok()) << again.error().message();
}

TEST_F(SecretSealerTest, ReopeningFindsTheSameKey) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  Result<std::unique_ptr<Pkcs11SecretSealer>> again = Pkcs11SecretSealer::Open(*store_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  Result<SecretBytes> opened = (*again)->Unseal(*sealed, kAad);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_TRUE(ConstantTimeEquals(opened->view(), kSeed));
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(FindSealingKeysRaw(*session).size(), 1u);
}

TEST_F(SecretSealerTest, AnotherKeyLabelCannotOpenTheSecret) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  Result<std::unique_ptr<Pkcs11SecretSealer>> other =
      Pkcs11SecretSealer::Open(*store_, "signet-secret-sealing-other");
  ASSERT_TRUE(other.ok()) << other.error().message();
  Result<SecretBytes> opened = (*other)->Unseal(*sealed, kAad);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code(), ErrorCode::kDataLoss);
}

TEST_F(SecretSealerTest, RecoversAfterAllSessionsAreClosed) {
  Result<Bytes> sealed = sealer_->Seal(kSeed, kAad);
  ASSERT_TRUE(sealed.ok());
  ASSERT_EQ(raw_->CloseAllSessions(), CKR_OK);
  Result<SecretBytes> opened = sealer_->Unseal(*sealed, kAad);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_TRUE(ConstantTimeEquals(opened->view(), kSeed));
}

TEST_F(SecretSealerTest, ManyThreadsSealAndUnsealAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&failures, t] {
      for (int i = 0; i < 20; ++i) {
        Bytes secret = ToBytes("secret-" + std::to_string(t) + "-" + std::to_string(i));
        Bytes aad = ToBytes("aad-" + std::to_string(t));
        Result<Bytes> sealed = sealer_->Seal(secret, aad);
        if (!sealed.ok()) {
          ++failures;
          continue;
        }
        Result<SecretBytes> opened = sealer_->Unseal(*sealed, aad);
        if (!opened.ok() || !ConstantTimeEquals(opened->view(), secret)) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace signet::hsm
