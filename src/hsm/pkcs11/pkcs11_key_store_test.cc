// Pkcs11KeyStore against a real SoftHSM2 token in a temporary folder. What the store claims is
// checked from outside: protection attributes and unreadable secrets through the test's own
// PKCS#11 session (RawToken), signatures with OpenSSL.
#include "hsm/pkcs11/pkcs11_key_store.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/encoding.h"
#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/testing/raw_token.h"
#include "hsm/pkcs11/testing/signature_check.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"

namespace signet::hsm {
namespace {

namespace hsmt = signet::hsm::testing;

constexpr std::array<KeyAlgorithm, 5> kAllAlgorithms = {
    KeyAlgorithm::kRsa3072, KeyAlgorithm::kRsa4096, KeyAlgorithm::kEcP256, KeyAlgorithm::kEcP384,
    KeyAlgorithm::kEd25519};
constexpr std::array<HashAlgorithm, 3> kAllHashes = {HashAlgorithm::kSha256, HashAlgorithm::kSha384,
                                                     HashAlgorithm::kSha512};

// One token and one key of every algorithm, shared by the tests of this suite (RSA-4096 takes
// about a second to generate).
class KeyStoreTest : public ::testing::Test {
 protected:
  static constexpr const char* kLabel = "signet-keys";

  static void SetUpTestSuite() {
    hsmt::SoftHsmSandbox& sandbox = hsmt::SharedSoftHsmSandbox();
    Result<Pkcs11Options> options = sandbox.CreateToken(kLabel);
    if (!options.ok()) return Abandon(options.error());
    Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(*options));
    if (!store.ok()) return Abandon(store.error());
    Result<std::unique_ptr<hsmt::RawToken>> raw =
        hsmt::RawToken::Open(hsmt::kSoftHsmModulePath, kLabel);
    if (!raw.ok()) return Abandon(raw.error());
    store_ = std::move(*store);
    raw_ = std::move(*raw);
    for (KeyAlgorithm algorithm : kAllAlgorithms) {
      Result<GeneratedKey> key =
          store_->GenerateKey(algorithm, "test-" + std::string(KeyAlgorithmName(algorithm)));
      if (!key.ok()) return Abandon(key.error());
      keys_.emplace(algorithm, std::move(*key));
    }
  }

  static void TearDownTestSuite() {
    raw_.reset();
    store_.reset();
    keys_.clear();
  }

  static void Abandon(const Error& error) {
    setup_error_ = error.message();
    raw_.reset();
    store_.reset();
  }

  void SetUp() override {
    if (!store_ || keys_.size() != kAllAlgorithms.size()) FAIL() << "setup: " << setup_error_;
  }

  static const GeneratedKey& Key(KeyAlgorithm algorithm) { return keys_.at(algorithm); }

  // The test's own view of the private (or public) key objects with this id.
  static std::vector<CK_OBJECT_HANDLE> FindRaw(const internal::Session& session,
                                               CK_OBJECT_CLASS object_class, const HsmKeyId& id) {
    Result<std::vector<CK_OBJECT_HANDLE>> found = raw_->FindKeys(session, object_class, id.bytes);
    EXPECT_TRUE(found.ok()) << found.error().message();
    return found.ok() ? *found : std::vector<CK_OBJECT_HANDLE>{};
  }

  static void ExpectVerifies(const GeneratedKey& key, SignatureScheme scheme, HashAlgorithm hash,
                             ByteView message) {
    SCOPED_TRACE(std::string(KeyAlgorithmName(key.algorithm)) + " " +
                 std::string(SignatureSchemeName(scheme)) + " " +
                 std::string(HashAlgorithmName(hash)));
    Bytes input = scheme == SignatureScheme::kEd25519 ? Bytes(message.begin(), message.end())
                                                      : hsmt::Digest(hash, message);
    Result<Bytes> signature = store_->Sign(key.id, scheme, hash, input);
    ASSERT_TRUE(signature.ok()) << signature.error().message();
    Result<bool> valid =
        hsmt::VerifySignature(key.public_key_spki, scheme, hash, input, *signature);
    ASSERT_TRUE(valid.ok()) << valid.error().message();
    EXPECT_TRUE(*valid) << "OpenSSL rejected the signature";

    // The same signature over a different digest (or message) must not verify.
    Bytes tampered = input;
    tampered[0] ^= 0x01;
    Result<bool> tampered_valid =
        hsmt::VerifySignature(key.public_key_spki, scheme, hash, tampered, *signature);
    ASSERT_TRUE(tampered_valid.ok());
    EXPECT_FALSE(*tampered_valid) << "a signature verified for a tampered input";
  }

  static inline std::unique_ptr<Pkcs11KeyStore> store_;
  static inline std::unique_ptr<hsmt::RawToken> raw_;
  static inline std::map<KeyAlgorithm, GeneratedKey> keys_;
  static inline std::string setup_error_;
};

TEST_F(KeyStoreTest, GeneratedKeysReportFullProtection) {
  for (KeyAlgorithm algorithm : kAllAlgorithms) {
    SCOPED_TRACE(KeyAlgorithmName(algorithm));
    Result<KeyProtection> protection = store_->Protection(Key(algorithm).id);
    ASSERT_TRUE(protection.ok()) << protection.error().message();
    EXPECT_FALSE(protection->extractable);
    EXPECT_TRUE(protection->sensitive);
    EXPECT_TRUE(protection->local);
    EXPECT_TRUE(protection->never_extractable);
    EXPECT_TRUE(protection->always_sensitive);
    EXPECT_TRUE(protection->is_token_object);
    EXPECT_TRUE(protection->is_private_object);
  }
}

TEST_F(KeyStoreTest, GeneratedKeysHaveTheRequestedAlgorithmAndIdSize) {
  for (KeyAlgorithm algorithm : kAllAlgorithms) {
    SCOPED_TRACE(KeyAlgorithmName(algorithm));
    const GeneratedKey& key = Key(algorithm);
    EXPECT_EQ(key.algorithm, algorithm);
    EXPECT_EQ(key.id.bytes.size(), 16u);
    Result<std::string> seen = hsmt::DescribeSpki(key.public_key_spki);
    ASSERT_TRUE(seen.ok()) << seen.error().message();
    EXPECT_EQ(*seen, KeyAlgorithmName(algorithm));
    Result<Bytes> again = store_->PublicKey(key.id);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(*again, key.public_key_spki);
  }
}

TEST_F(KeyStoreTest, PrivateKeyValuesCannotBeRead) {
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  for (KeyAlgorithm algorithm : kAllAlgorithms) {
    SCOPED_TRACE(KeyAlgorithmName(algorithm));
    std::vector<CK_OBJECT_HANDLE> found = FindRaw(*session, CKO_PRIVATE_KEY, Key(algorithm).id);
    ASSERT_EQ(found.size(), 1u);
    std::vector<CK_ATTRIBUTE_TYPE> secrets =
        IsRsa(algorithm) ? std::vector<CK_ATTRIBUTE_TYPE>{CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                                          CKA_PRIME_2, CKA_COEFFICIENT}
                         : std::vector<CK_ATTRIBUTE_TYPE>{CKA_VALUE};
    for (CK_ATTRIBUTE_TYPE type : secrets) {
      SCOPED_TRACE("attribute 0x" + std::to_string(type));
      // Size query, then with a buffer: neither may reveal anything.
      CK_ATTRIBUTE query{type, nullptr, 0};
      EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session->get(),
                                    found[0], &query, CK_ULONG{1}),
                CKR_ATTRIBUTE_SENSITIVE);
      EXPECT_EQ(query.ulValueLen, CK_UNAVAILABLE_INFORMATION);
      Bytes buffer(1024, 0);
      CK_ATTRIBUTE read{type, buffer.data(), buffer.size()};
      EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session->get(),
                                    found[0], &read, CK_ULONG{1}),
                CKR_ATTRIBUTE_SENSITIVE);
      EXPECT_EQ(read.ulValueLen, CK_UNAVAILABLE_INFORMATION);
      EXPECT_EQ(buffer, Bytes(1024, 0));
    }
  }
}

// Whoever holds the PIN cannot give a key another CKA_ID (another tenant's place), copy the private
// key under a new id (a copy would outlive `signet key destroy`), or turn on another use.
TEST_F(KeyStoreTest, KeysCannotBeCopiedOrChanged) {
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  for (KeyAlgorithm algorithm : kAllAlgorithms) {
    SCOPED_TRACE(KeyAlgorithmName(algorithm));
    for (CK_OBJECT_CLASS object_class : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
      std::vector<CK_OBJECT_HANDLE> found = FindRaw(*session, object_class, Key(algorithm).id);
      ASSERT_EQ(found.size(), 1u);
      Bytes other_id(16, 0x42);
      CK_ATTRIBUTE new_id{CKA_ID, other_id.data(), other_id.size()};
      EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_SetAttributeValue, session->get(),
                                    found[0], &new_id, CK_ULONG{1}),
                CKR_ACTION_PROHIBITED);
      CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
      if (object_class == CKO_PRIVATE_KEY) {
        CK_BBOOL yes = CK_TRUE;
        CK_ATTRIBUTE derive{CKA_DERIVE, &yes, sizeof yes};
        EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_SetAttributeValue, session->get(),
                                      found[0], &derive, CK_ULONG{1}),
                  CKR_ACTION_PROHIBITED);
        EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_CopyObject, session->get(), found[0],
                                      &new_id, CK_ULONG{1}, &copy),
                  CKR_ACTION_PROHIBITED);
      }
    }
  }
}

TEST_F(KeyStoreTest, PrivateKeysCannotBeWrapped) {
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  // A session AES key that may wrap anything extractable.
  CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES;
  CK_ULONG length = 32;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  std::array<CK_ATTRIBUTE, 6> aes_template = {
      CK_ATTRIBUTE{CKA_CLASS, &secret_class, sizeof secret_class},
      CK_ATTRIBUTE{CKA_KEY_TYPE, &aes, sizeof aes},
      CK_ATTRIBUTE{CKA_VALUE_LEN, &length, sizeof length},
      CK_ATTRIBUTE{CKA_TOKEN, &no, sizeof no},
      CK_ATTRIBUTE{CKA_WRAP, &yes, sizeof yes},
      CK_ATTRIBUTE{CKA_UNWRAP, &yes, sizeof yes}};
  CK_MECHANISM generate{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE wrapping_key = CK_INVALID_HANDLE;
  ASSERT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_GenerateKey, session->get(), &generate,
                                aes_template.data(), CK_ULONG{aes_template.size()}, &wrapping_key),
            CKR_OK);
  for (KeyAlgorithm algorithm : kAllAlgorithms) {
    SCOPED_TRACE(KeyAlgorithmName(algorithm));
    std::vector<CK_OBJECT_HANDLE> found = FindRaw(*session, CKO_PRIVATE_KEY, Key(algorithm).id);
    ASSERT_EQ(found.size(), 1u);
    CK_MECHANISM wrap{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    Bytes wrapped(8192);
    CK_ULONG wrapped_length = wrapped.size();
    EXPECT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_WrapKey, session->get(), &wrap, wrapping_key,
                                  found[0], wrapped.data(), &wrapped_length),
              CKR_KEY_UNEXTRACTABLE);
  }
}

TEST_F(KeyStoreTest, RsaPkcs1SignaturesVerifyWithOpenSsl) {
  for (KeyAlgorithm algorithm : {KeyAlgorithm::kRsa3072, KeyAlgorithm::kRsa4096}) {
    for (HashAlgorithm hash : kAllHashes) {
      ExpectVerifies(Key(algorithm), SignatureScheme::kRsaPkcs1v15, hash, AsBytes("pkcs1 data"));
    }
  }
}

TEST_F(KeyStoreTest, RsaPssSignaturesVerifyWithOpenSsl) {
  for (KeyAlgorithm algorithm : {KeyAlgorithm::kRsa3072, KeyAlgorithm::kRsa4096}) {
    for (HashAlgorithm hash : kAllHashes) {
      ExpectVerifies(Key(algorithm), SignatureScheme::kRsaPss, hash, AsBytes("pss data"));
    }
  }
}

TEST_F(KeyStoreTest, EcdsaSignaturesAreDerAndVerifyWithOpenSsl) {
  for (KeyAlgorithm algorithm : {KeyAlgorithm::kEcP256, KeyAlgorithm::kEcP384}) {
    for (HashAlgorithm hash : kAllHashes) {
      ExpectVerifies(Key(algorithm), SignatureScheme::kEcdsa, hash, AsBytes("ecdsa data"));
    }
    Result<Bytes> signature =
        store_->Sign(Key(algorithm).id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256,
                     hsmt::Digest(HashAlgorithm::kSha256, AsBytes("x")));
    ASSERT_TRUE(signature.ok());
    EXPECT_EQ((*signature)[0], 0x30) << "not a DER SEQUENCE";
  }
}

TEST_F(KeyStoreTest, Ed25519SignsWholeMessageAndVerifiesWithOpenSsl) {
  ExpectVerifies(Key(KeyAlgorithm::kEd25519), SignatureScheme::kEd25519, HashAlgorithm::kSha256,
                 AsBytes("a checkpoint body, signed as it is\n"));
  // Longer than any digest: Ed25519 gets the message, not a hash.
  std::string long_message(5000, 'm');
  ExpectVerifies(Key(KeyAlgorithm::kEd25519), SignatureScheme::kEd25519, HashAlgorithm::kSha512,
                 AsBytes(long_message));
}

TEST_F(KeyStoreTest, RejectsDigestOfWrongLength) {
  Bytes short_digest(31, 0xab);
  Result<Bytes> ec = store_->Sign(Key(KeyAlgorithm::kEcP256).id, SignatureScheme::kEcdsa,
                                  HashAlgorithm::kSha256, short_digest);
  ASSERT_FALSE(ec.ok());
  EXPECT_EQ(ec.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ec.error().message().find("31 bytes"), std::string::npos) << ec.error().message();

  Result<Bytes> rsa = store_->Sign(Key(KeyAlgorithm::kRsa3072).id, SignatureScheme::kRsaPkcs1v15,
                                   HashAlgorithm::kSha384, Bytes(32, 0xab));
  ASSERT_FALSE(rsa.ok());
  EXPECT_EQ(rsa.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(KeyStoreTest, RejectsSchemeThatDoesNotFitKey) {
  struct Case {
    KeyAlgorithm key;
    SignatureScheme scheme;
  };
  for (Case c : {Case{KeyAlgorithm::kRsa3072, SignatureScheme::kEcdsa},
                 Case{KeyAlgorithm::kRsa4096, SignatureScheme::kEd25519},
                 Case{KeyAlgorithm::kEcP256, SignatureScheme::kRsaPss},
                 Case{KeyAlgorithm::kEcP384, SignatureScheme::kRsaPkcs1v15},
                 Case{KeyAlgorithm::kEcP256, SignatureScheme::kEd25519},
                 Case{KeyAlgorithm::kEd25519, SignatureScheme::kEcdsa},
                 Case{KeyAlgorithm::kEd25519, SignatureScheme::kRsaPkcs1v15}}) {
    SCOPED_TRACE(std::string(KeyAlgorithmName(c.key)) + " " +
                 std::string(SignatureSchemeName(c.scheme)));
    Result<Bytes> signature =
        store_->Sign(Key(c.key).id, c.scheme, HashAlgorithm::kSha256, Bytes(32, 0x11));
    ASSERT_FALSE(signature.ok());
    EXPECT_EQ(signature.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(signature.error().message().find("cannot sign"), std::string::npos)
        << signature.error().message();
  }
}

TEST_F(KeyStoreTest, UnknownKeyIdIsNotFound) {
  HsmKeyId unknown{Bytes(16, 0x5a)};
  Result<Bytes> signature =
      store_->Sign(unknown, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, Bytes(32, 0x01));
  ASSERT_FALSE(signature.ok());
  EXPECT_EQ(signature.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(signature.error().message().find(HexEncode(unknown.bytes)), std::string::npos);
  EXPECT_EQ(store_->PublicKey(unknown).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->Protection(unknown).error().code(), ErrorCode::kNotFound);
}

// Keys put on the token by other means: one generated exportable, one imported from a value.
// Neither signs nor gives its public key; Protection still shows what it has, for `key show`.
TEST_F(KeyStoreTest, KeysWithoutFullProtectionAreNotUsed) {
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok()) << session.error().message();
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  const Bytes p256_oid = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  auto attr = [](CK_ATTRIBUTE_TYPE type, const void* value, size_t size) {
    return CK_ATTRIBUTE{type, const_cast<void*>(value), static_cast<CK_ULONG>(size)};
  };

  // Generated in the module, but extractable and not sensitive.
  HsmKeyId exportable{Bytes(16, 0x61)};
  std::array<CK_ATTRIBUTE, 4> public_template = {
      attr(CKA_TOKEN, &yes, 1), attr(CKA_VERIFY, &yes, 1),
      attr(CKA_EC_PARAMS, p256_oid.data(), p256_oid.size()),
      attr(CKA_ID, exportable.bytes.data(), exportable.bytes.size())};
  std::array<CK_ATTRIBUTE, 6> private_template = {
      attr(CKA_TOKEN, &yes, 1),    attr(CKA_PRIVATE, &yes, 1),
      attr(CKA_SENSITIVE, &no, 1), attr(CKA_EXTRACTABLE, &yes, 1),
      attr(CKA_SIGN, &yes, 1),     attr(CKA_ID, exportable.bytes.data(), exportable.bytes.size())};
  CK_MECHANISM generate{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
  ASSERT_EQ(
      raw_->module().Call(&CK_FUNCTION_LIST::C_GenerateKeyPair, session->get(), &generate,
                          public_template.data(), CK_ULONG{public_template.size()},
                          private_template.data(), CK_ULONG{private_template.size()}, &pub, &priv),
      CKR_OK);

  // Imported: marked sensitive and not extractable, but its value came from outside.
  HsmKeyId imported{Bytes(16, 0x62)};
  CK_OBJECT_CLASS private_class = CKO_PRIVATE_KEY;
  CK_KEY_TYPE ec = CKK_EC;
  const Bytes scalar(32, 0x17);
  std::array<CK_ATTRIBUTE, 10> import_template = {
      attr(CKA_CLASS, &private_class, sizeof private_class),
      attr(CKA_KEY_TYPE, &ec, sizeof ec),
      attr(CKA_TOKEN, &yes, 1),
      attr(CKA_PRIVATE, &yes, 1),
      attr(CKA_SENSITIVE, &yes, 1),
      attr(CKA_EXTRACTABLE, &no, 1),
      attr(CKA_SIGN, &yes, 1),
      attr(CKA_EC_PARAMS, p256_oid.data(), p256_oid.size()),
      attr(CKA_VALUE, scalar.data(), scalar.size()),
      attr(CKA_ID, imported.bytes.data(), imported.bytes.size())};
  CK_OBJECT_HANDLE created = CK_INVALID_HANDLE;
  ASSERT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_CreateObject, session->get(),
                                import_template.data(), CK_ULONG{import_template.size()}, &created),
            CKR_OK);

  for (const auto& [id, lacks] :
       {std::pair{exportable, "CKA_SENSITIVE"}, std::pair{imported, "CKA_LOCAL"}}) {
    SCOPED_TRACE(HexEncode(id.bytes));
    Result<Bytes> signature =
        store_->Sign(id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, Bytes(32, 0x01));
    ASSERT_FALSE(signature.ok()) << "signed with a key that left, or came from, outside";
    EXPECT_EQ(signature.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(signature.error().message().find(lacks), std::string::npos)
        << signature.error().message();
    EXPECT_EQ(store_->PublicKey(id).error().code(), ErrorCode::kFailedPrecondition);
    Result<KeyProtection> protection = store_->Protection(id);
    ASSERT_TRUE(protection.ok()) << protection.error().message();
    EXPECT_FALSE(protection->local && protection->sensitive && !protection->extractable);
    EXPECT_TRUE(store_->DestroyKey(id).ok());
  }
}

TEST_F(KeyStoreTest, RejectsEmptyKeyIdAndUnknownEnums) {
  EXPECT_EQ(store_->PublicKey(HsmKeyId{}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GenerateKey(static_cast<KeyAlgorithm>(99), "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_
                ->Sign(Key(KeyAlgorithm::kEcP256).id, static_cast<SignatureScheme>(99),
                       HashAlgorithm::kSha256, Bytes(32, 1))
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(KeyStoreTest, EightThreadsSignAtOnce) {
  constexpr int kThreads = 8;
  constexpr int kEcPerThread = 200;
  constexpr int kRsaPerThread = 3;
  struct Made {
    const GeneratedKey* key;
    SignatureScheme scheme;
    Bytes digest;
    Result<Bytes> signature;
  };
  std::vector<std::vector<Made>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEcPerThread + kRsaPerThread; ++i) {
        bool rsa = i % (kEcPerThread / kRsaPerThread) == 7;
        const GeneratedKey& key = Key(rsa ? KeyAlgorithm::kRsa3072 : KeyAlgorithm::kEcP256);
        SignatureScheme scheme = rsa ? SignatureScheme::kRsaPkcs1v15 : SignatureScheme::kEcdsa;
        Bytes digest = hsmt::Digest(HashAlgorithm::kSha256,
                                    AsBytes(std::to_string(t) + "/" + std::to_string(i)));
        Result<Bytes> signature = store_->Sign(key.id, scheme, HashAlgorithm::kSha256, digest);
        made[static_cast<size_t>(t)].push_back(Made{&key, scheme, digest, std::move(signature)});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  int signatures = 0;
  int rsa = 0;
  for (const std::vector<Made>& per_thread : made) {
    for (const Made& m : per_thread) {
      ASSERT_TRUE(m.signature.ok()) << m.signature.error().message();
      Result<bool> valid = hsmt::VerifySignature(m.key->public_key_spki, m.scheme,
                                                 HashAlgorithm::kSha256, m.digest, *m.signature);
      ASSERT_TRUE(valid.ok());
      EXPECT_TRUE(*valid);
      ++signatures;
      if (m.scheme == SignatureScheme::kRsaPkcs1v15) ++rsa;
    }
  }
  EXPECT_EQ(signatures, kThreads * (kEcPerThread + kRsaPerThread));
  EXPECT_GE(rsa, kThreads * 2);
}

TEST_F(KeyStoreTest, DestroyKeyRemovesBothObjectsAndCanBeRepeated) {
  Result<GeneratedKey> key = store_->GenerateKey(KeyAlgorithm::kEcP256, "to-destroy");
  ASSERT_TRUE(key.ok()) << key.error().message();
  Bytes digest(32, 0x42);
  ASSERT_TRUE(store_->Sign(key->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, digest).ok());

  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(FindRaw(*session, CKO_PRIVATE_KEY, key->id).size(), 1u);
  EXPECT_EQ(FindRaw(*session, CKO_PUBLIC_KEY, key->id).size(), 1u);

  Status destroyed = store_->DestroyKey(key->id);
  ASSERT_TRUE(destroyed.ok()) << destroyed.error().message();
  EXPECT_TRUE(FindRaw(*session, CKO_PRIVATE_KEY, key->id).empty());
  EXPECT_TRUE(FindRaw(*session, CKO_PUBLIC_KEY, key->id).empty());

  EXPECT_TRUE(store_->DestroyKey(key->id).ok()) << "destroying again must succeed";
  Result<Bytes> after =
      store_->Sign(key->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, digest);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->PublicKey(key->id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->Protection(key->id).error().code(), ErrorCode::kNotFound);
  // Other keys are untouched.
  EXPECT_TRUE(store_->Protection(Key(KeyAlgorithm::kEcP256).id).ok());
}

// The public object of an EC key removed (no login needed for that): the key still signs, and its
// public key is FailedPrecondition, not NotFound, which callers take for key material gone.
TEST_F(KeyStoreTest, AMissingPublicObjectIsNotAMissingKey) {
  Result<GeneratedKey> key = store_->GenerateKey(KeyAlgorithm::kEcP256, "public-gone");
  ASSERT_TRUE(key.ok()) << key.error().message();
  Result<internal::Session> session = raw_->OpenSession();
  ASSERT_TRUE(session.ok());
  std::vector<CK_OBJECT_HANDLE> pub = FindRaw(*session, CKO_PUBLIC_KEY, key->id);
  ASSERT_EQ(pub.size(), 1u);
  ASSERT_EQ(raw_->module().Call(&CK_FUNCTION_LIST::C_DestroyObject, session->get(), pub[0]),
            CKR_OK);
  Result<Bytes> spki = store_->PublicKey(key->id);
  ASSERT_FALSE(spki.ok());
  EXPECT_EQ(spki.error().code(), ErrorCode::kFailedPrecondition) << spki.error().message();
  EXPECT_NE(spki.error().message().find("public key object"), std::string::npos)
      << spki.error().message();
  EXPECT_TRUE(
      store_->Sign(key->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, Bytes(32, 7)).ok());
  EXPECT_TRUE(store_->DestroyKey(key->id).ok());
}

TEST_F(KeyStoreTest, ListKeysReportsEveryPrivateKeyWithLabelAndAlgorithm) {
  Result<GeneratedKey> extra = store_->GenerateKey(KeyAlgorithm::kEcP384, "listed-then-gone");
  ASSERT_TRUE(extra.ok()) << extra.error().message();
  auto listed = [&]() {
    std::map<std::string, TokenKey> by_id;
    Result<std::vector<TokenKey>> keys = store_->ListKeys();
    EXPECT_TRUE(keys.ok()) << keys.error().message();
    if (!keys.ok()) return by_id;
    for (TokenKey& k : *keys) {
      std::string hex = HexEncode(k.id.bytes);
      EXPECT_TRUE(by_id.emplace(hex, std::move(k)).second) << "listed twice: " << hex;
    }
    return by_id;
  };
  std::map<std::string, TokenKey> before = listed();
  for (KeyAlgorithm algorithm : kAllAlgorithms) {
    SCOPED_TRACE(std::string(KeyAlgorithmName(algorithm)));
    auto it = before.find(HexEncode(Key(algorithm).id.bytes));
    ASSERT_NE(it, before.end());
    EXPECT_EQ(it->second.label, "test-" + std::string(KeyAlgorithmName(algorithm)));
    EXPECT_EQ(it->second.algorithm, algorithm);
  }
  auto it = before.find(HexEncode(extra->id.bytes));
  ASSERT_NE(it, before.end());
  EXPECT_EQ(it->second.label, "listed-then-gone");

  ASSERT_TRUE(store_->DestroyKey(extra->id).ok());
  // Logged out, private keys are invisible: the store must log in again, not list none.
  ASSERT_EQ(raw_->Logout(), CKR_OK);
  std::map<std::string, TokenKey> after = listed();
  EXPECT_EQ(after.count(HexEncode(extra->id.bytes)), 0u);
  EXPECT_EQ(after.size(), before.size() - 1);
}

TEST_F(KeyStoreTest, DescribeTokenTrimsPadding) {
  Result<TokenDescription> description = store_->DescribeToken();
  ASSERT_TRUE(description.ok()) << description.error().message();
  EXPECT_EQ(description->label, kLabel);
  EXPECT_EQ(description->module_path, hsmt::kSoftHsmModulePath);
  EXPECT_EQ(description->manufacturer, "SoftHSM project");
  EXPECT_EQ(description->model, "SoftHSM v2");
  EXPECT_EQ(description->serial.size(), 16u);
  EXPECT_FALSE(description->firmware_version.empty());
}

// Opening and initialising tokens, and the errors people will meet. No store is open on this
// suite's token while a test runs, so its login state is the token's own.
class OpenTest : public ::testing::Test {
 protected:
  static constexpr const char* kLabel = "signet-open";

  static void SetUpTestSuite() {
    Result<Pkcs11Options> options = hsmt::SharedSoftHsmSandbox().CreateToken(kLabel);
    created_ = options.ok();
    if (!created_) setup_error_ = options.error().message();
  }
  void SetUp() override {
    if (!created_) FAIL() << "setup: " << setup_error_;
  }

  static inline bool created_ = false;
  static inline std::string setup_error_;
};

TEST_F(OpenTest, OpensByLabelAndBySerial) {
  Result<std::unique_ptr<Pkcs11KeyStore>> by_label =
      Pkcs11KeyStore::Open(hsmt::SoftHsmSandbox::OptionsFor(kLabel));
  ASSERT_TRUE(by_label.ok()) << by_label.error().message();
  Result<TokenDescription> description = (*by_label)->DescribeToken();
  ASSERT_TRUE(description.ok());
  by_label->reset();

  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor("");
  options.token_serial = description->serial;
  Result<std::unique_ptr<Pkcs11KeyStore>> by_serial = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_TRUE(by_serial.ok()) << by_serial.error().message();
  EXPECT_EQ((*by_serial)->DescribeToken()->label, kLabel);
}

TEST_F(OpenTest, MissingModuleIsNotFound) {
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.module_path = "/nonexistent/libpkcs11-missing.so";
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kNotFound);
  const std::string& message = store.error().message();
  EXPECT_NE(message.find("cannot load PKCS#11 module /nonexistent/libpkcs11-missing.so"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("check the module path"), std::string::npos) << message;
}

TEST_F(OpenTest, FileThatIsNotALibraryIsFailedPrecondition) {
  std::string path = hsmt::SharedSoftHsmSandbox().directory() + "/softhsm2.conf";
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.module_path = path;
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(store.error().message().find(path), std::string::npos) << store.error().message();
}

TEST_F(OpenTest, UnknownLabelListsTheLabelsThatExist) {
  Result<std::unique_ptr<Pkcs11KeyStore>> store =
      Pkcs11KeyStore::Open(hsmt::SoftHsmSandbox::OptionsFor("no-such-token"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kNotFound);
  const std::string& message = store.error().message();
  EXPECT_NE(message.find("no token 'no-such-token'"), std::string::npos) << message;
  EXPECT_NE(message.find("'signet-open'"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST_F(OpenTest, UnknownSerialIsNotFound) {
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor("");
  options.token_serial = "0000000000000000";
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(store.error().message().find("serial '0000000000000000'"), std::string::npos);
}

TEST_F(OpenTest, WrongPinIsUnauthenticatedAndNotEchoed) {
  const std::string wrong_pin = "wrong-pin-31337";
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.user_pin = SecretBytes(wrong_pin);
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kUnauthenticated);
  const std::string& message = store.error().message();
  EXPECT_NE(message.find("token 'signet-open' rejected the user PIN"), std::string::npos)
      << message;
  EXPECT_NE(message.find("CKR_PIN_INCORRECT"), std::string::npos) << message;
  EXPECT_EQ(message.find(wrong_pin), std::string::npos) << "the PIN leaked into: " << message;
  EXPECT_EQ(message.find(hsmt::kTestUserPin), std::string::npos);
}

TEST_F(OpenTest, InitializingTheSameLabelTwiceIsAlreadyExists) {
  Status again = InitializeToken(hsmt::kSoftHsmModulePath, kLabel, SecretBytes(hsmt::kTestSoPin),
                                 SecretBytes(hsmt::kTestUserPin));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(again.error().message().find("'signet-open'"), std::string::npos);
}

TEST_F(OpenTest, RejectsBadOptions) {
  Pkcs11Options both = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  both.token_serial = "1234";
  EXPECT_EQ(Pkcs11KeyStore::Open(std::move(both)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Pkcs11KeyStore::Open(hsmt::SoftHsmSandbox::OptionsFor("")).error().code(),
            ErrorCode::kInvalidArgument);
  Pkcs11Options no_pin = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  no_pin.user_pin = SecretBytes();
  EXPECT_EQ(Pkcs11KeyStore::Open(std::move(no_pin)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(InitializeToken(hsmt::kSoftHsmModulePath, std::string(33, 'x'),
                            SecretBytes(hsmt::kTestSoPin), SecretBytes(hsmt::kTestUserPin))
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace signet::hsm
