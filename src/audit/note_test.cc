#include "audit/note.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "audit/testing/testdata.h"
#include "common/encoding.h"

namespace signet::audit {
namespace {

using nlohmann::json;

// The error code of a failed result, or nullopt if it succeeded: a call that wrongly succeeds
// then fails the expectation instead of aborting the whole binary in Result::error().
template <typename R>
std::optional<ErrorCode> CodeOf(const R& result) {
  if (result.ok()) return std::nullopt;
  return result.error().code();
}

// --- An Ed25519 key made with OpenSSL, standing in for the HSM ---------------------------------

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

class TestEd25519Key {
 public:
  // A fresh key from OpenSSL's generator.
  TestEd25519Key() {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    EVP_PKEY* key = nullptr;
    if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_keygen(ctx.get(), &key) != 1) {
      std::abort();
    }
    key_.reset(key);
  }
  // The key with a given 32-byte seed (RFC 8032 private key).
  explicit TestEd25519Key(ByteView seed)
      : key_(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size())) {
    if (key_ == nullptr) std::abort();
  }

  Bytes PublicKey() const {
    Bytes out(32);
    size_t length = out.size();
    if (EVP_PKEY_get_raw_public_key(key_.get(), out.data(), &length) != 1) std::abort();
    return out;
  }

  MessageSigner Signer() const {
    return [this](ByteView message) -> Result<Bytes> {
      std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
      Bytes signature(64);
      size_t length = signature.size();
      if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
          EVP_DigestSign(ctx.get(), signature.data(), &length, message.data(), message.size()) !=
              1) {
        return InternalError("EVP_DigestSign failed");
      }
      return signature;
    };
  }

  NoteSigner ForName(std::string_view name) const {
    auto key = NewEd25519VerifierKey(name, PublicKey());
    if (!key.ok()) std::abort();
    return NoteSigner{*key, Signer()};
  }

 private:
  PkeyPtr key_;
};

// --- The shared vectors --------------------------------------------------------------------------

json LoadSignedNotes() {
  auto dir = testing::MerkleTestdataDir();
  EXPECT_TRUE(dir.ok()) << dir.error().message();
  if (!dir.ok()) return json::array();
  auto text = testing::ReadTextFile(*dir + "/signed_notes.json");
  EXPECT_TRUE(text.ok()) << text.error().message();
  if (!text.ok()) return json::array();
  return json::parse(*text);
}

const json& FindNote(const json& notes, std::string_view name) {
  for (const json& n : notes) {
    if (n["name"].get<std::string>() == name) return n;
  }
  ADD_FAILURE() << "vector " << name << " not found";
  static const json kNone = json::object();
  return kNone;
}

VerifierKey MustParseKey(std::string_view vkey) {
  auto key = ParseVerifierKey(vkey);
  EXPECT_TRUE(key.ok()) << vkey << ": " << key.error().message();
  return key.ok() ? *key : VerifierKey{};
}

// A valid note to mutate in the malformed-input tests: the C2SP signed-note example.
constexpr std::string_view kExampleNote =
    "This is an example message.\n"
    "\n"
    "\xE2\x80\x94 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM="
    "\n";
constexpr std::string_view kExampleKey =
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
constexpr std::string_view kDash = "\xE2\x80\x94 ";

std::string Replace(std::string_view text, std::string_view from, std::string_view to) {
  std::string out(text);
  const size_t pos = out.find(from);
  if (pos == std::string::npos) std::abort();
  out.replace(pos, from.size(), to);
  return out;
}

// --- Vectors -------------------------------------------------------------------------------------

TEST(SignedNoteVectorTest, EveryCaseGivesTheExpectedAnswer) {
  const json notes = LoadSignedNotes();
  ASSERT_EQ(notes.size(), 13u) << "signed_notes.json is missing or changed";
  int accepted = 0;
  int rejected = 0;
  for (const json& n : notes) {
    const std::string name = n["name"].get<std::string>();
    const VerifierKey key = MustParseKey(n["vkey"].get<std::string>());
    const std::vector<VerifierKey> keys = {key};
    const bool expect_fail = n.value("expect_fail", false);
    auto opened = OpenNote(n["note"].get<std::string>(), keys);
    EXPECT_EQ(opened.ok(), !expect_fail)
        << name << ": " << (opened.ok() ? "accepted" : opened.error().message());
    if (opened.ok()) {
      ++accepted;
      ASSERT_EQ(opened->verified.size(), 1u) << name;
      EXPECT_EQ(opened->verified[0].key_name, key.name);
      if (n.contains("origin")) {
        auto checkpoint =
            OpenCheckpoint(n["note"].get<std::string>(), n["origin"].get<std::string>(), keys);
        EXPECT_TRUE(checkpoint.ok()) << name << ": " << checkpoint.error().message();
      }
    } else {
      ++rejected;
    }
  }
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(rejected, 3);
  std::cout << "[          ] signed notes: " << accepted << " accepted, " << rejected
            << " rejected as expected\n";
}

TEST(SignedNoteVectorTest, NegativeCasesFailForTheRightReason) {
  const json notes = LoadSignedNotes();
  struct Case {
    std::string_view name;
    ErrorCode code;
    std::string_view message;
  };
  const Case cases[] = {
      // The 0x05 signature does not cover the origin line; the check that it equals the key name
      // is what catches the change.
      {"NEG-rome-ct-bad-prefix", ErrorCode::kDataLoss, "does not cover the origin"},
      // The garbage base64 decodes to a key ID no trusted key has, so no trusted line remains.
      {"NEG-rekor-bad-signature", ErrorCode::kUnauthenticated, "no signature by a trusted key"},
      {"NEG-sumdb-tampered-size", ErrorCode::kDataLoss, "does not verify"},
  };
  for (const Case& c : cases) {
    const json& n = FindNote(notes, c.name);
    ASSERT_TRUE(n.contains("note"));
    const std::vector<VerifierKey> keys = {MustParseKey(n["vkey"].get<std::string>())};
    auto opened = OpenNote(n["note"].get<std::string>(), keys);
    ASSERT_FALSE(opened.ok()) << c.name;
    EXPECT_EQ(CodeOf(opened), c.code) << c.name << ": " << opened.error().message();
    EXPECT_NE(opened.error().message().find(c.message), std::string::npos)
        << c.name << ": " << opened.error().message();
  }
}

TEST(SignedNoteVectorTest, VerifierKeysFormatBackToTheSameString) {
  const json notes = LoadSignedNotes();
  ASSERT_FALSE(notes.empty());
  for (const json& n : notes) {
    const std::string vkey = n["vkey"].get<std::string>();
    EXPECT_EQ(FormatVerifierKey(MustParseKey(vkey)), vkey);
  }
}

TEST(SignedNoteVectorTest, AnOriginOtherThanTheKeyNameIsAcceptedForEd25519) {
  const json notes = LoadSignedNotes();
  const json& n = FindNote(notes, "sumdb-real-checkpoint-6476701");
  ASSERT_TRUE(n.contains("note"));
  const std::vector<VerifierKey> keys = {MustParseKey(n["vkey"].get<std::string>())};
  auto checkpoint = OpenCheckpoint(n["note"].get<std::string>(), "go.sum database tree", keys);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.error().message();
  EXPECT_EQ(checkpoint->checkpoint.size, TreeSize(6476701));
  EXPECT_EQ(Base64Encode(checkpoint->checkpoint.root),
            "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=");
  auto wrong = OpenCheckpoint(n["note"].get<std::string>(), "sum.golang.org", keys);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(CodeOf(wrong), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.error().message().find("expected \"sum.golang.org\""), std::string::npos);
}

TEST(SignedNoteVectorTest, EachCosignerVerifiesAndTheOthersAreKept) {
  const json notes = LoadSignedNotes();
  std::vector<VerifierKey> all;
  for (std::string_view name :
       {"sumdb-real-checkpoint-6476701", "sumdb-checkpoint-with-witness-cosigs-monkeys",
        "sumdb-checkpoint-with-witness-cosigs-bananas",
        "sumdb-checkpoint-with-witness-cosigs-witness"}) {
    all.push_back(MustParseKey(FindNote(notes, name)["vkey"].get<std::string>()));
  }
  const std::string note =
      FindNote(notes, "sumdb-checkpoint-with-witness-cosigs-witness")["note"].get<std::string>();
  auto every = OpenNote(note, all);
  ASSERT_TRUE(every.ok()) << every.error().message();
  EXPECT_EQ(every->verified.size(), 4u);
  EXPECT_TRUE(every->others.empty());
  const std::vector<VerifierKey> only_bananas = {all[2]};
  auto one = OpenNote(note, only_bananas);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->verified.size(), 1u);
  EXPECT_EQ(one->verified[0].key_name, "bananas");
  ASSERT_EQ(one->others.size(), 3u);
  EXPECT_EQ(one->others[0].key_name, "sum.golang.org");
}

TEST(SignedNoteVectorTest, GoSignerKeyReproducesTheVectorSignature) {
  const json notes = LoadSignedNotes();
  const json& n = FindNote(notes, "golang-note-PeterNeumann");
  ASSERT_TRUE(n.contains("skey"));
  // PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>: split on the first four '+' only.
  const std::string skey = n["skey"].get<std::string>();
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) pos = skey.find('+', pos) + 1;
  auto decoded = Base64Decode(std::string_view(skey).substr(pos));
  ASSERT_TRUE(decoded.ok());
  ASSERT_EQ(decoded->size(), 33u);
  ASSERT_EQ((*decoded)[0], 0x01);
  const TestEd25519Key key(ByteView(*decoded).subspan(1));
  const NoteSigner signer = key.ForName("PeterNeumann");
  EXPECT_EQ(FormatVerifierKey(signer.key), n["vkey"].get<std::string>());

  const std::string text =
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n";
  auto signed_note = SignNote(text, std::span(&signer, 1));
  ASSERT_TRUE(signed_note.ok()) << signed_note.error().message();
  // Ed25519 is deterministic: the note is byte for byte the vector's first signature line.
  const std::string vector_note = n["note"].get<std::string>();
  EXPECT_EQ(*signed_note, vector_note.substr(0, vector_note.find("\xE2\x80\x94 EnochRoot")));
}

TEST(SignedNoteVectorTest, C2spCheckpointExampleParses) {
  auto dir = testing::MerkleTestdataDir();
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  auto text = testing::ReadTextFile(*dir + "/c2sp-tlog-checkpoint-example.txt");
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto note = ParseNote(*text);
  ASSERT_TRUE(note.ok()) << note.error().message();
  ASSERT_EQ(note->signatures.size(), 1u);
  EXPECT_EQ(note->signatures[0].key_name, "example.com/behind-the-sofa");
  EXPECT_EQ(note->signatures[0].signature.size(), 64u);
  auto checkpoint = ParseCheckpoint(note->text);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.error().message();
  EXPECT_EQ(checkpoint->origin, "example.com/behind-the-sofa");
  EXPECT_EQ(checkpoint->size, TreeSize(20852163));
  EXPECT_EQ(Base64Encode(checkpoint->root), "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
  EXPECT_TRUE(checkpoint->extensions.empty());
  EXPECT_EQ(*FormatCheckpoint(*checkpoint), note->text);
  EXPECT_EQ(*FormatNote(*note), *text);
  // Its key is not published: with any other key it is simply unauthenticated.
  const std::vector<VerifierKey> keys = {MustParseKey(kExampleKey)};
  EXPECT_EQ(CodeOf(OpenNote(*text, keys)), ErrorCode::kUnauthenticated);
}

// --- Parsing -------------------------------------------------------------------------------------

TEST(NoteParseTest, ParsesTheC2spExample) {
  auto note = ParseNote(kExampleNote);
  ASSERT_TRUE(note.ok()) << note.error().message();
  EXPECT_EQ(note->text, "This is an example message.\n");
  ASSERT_EQ(note->signatures.size(), 1u);
  EXPECT_EQ(note->signatures[0].key_name, "example.com/foo");
  EXPECT_EQ(note->signatures[0].key_id, 0x530d903au);
  EXPECT_EQ(*FormatNote(*note), kExampleNote);
}

TEST(NoteParseTest, RejectsMalformedNotes) {
  const std::string sig_line = std::string(kExampleNote.substr(kExampleNote.find(kDash)));
  const std::string b64 = sig_line.substr(sig_line.rfind(' ') + 1, 92);
  struct Case {
    std::string description;
    std::string note;
  };
  std::vector<Case> cases = {
      {"empty", ""},
      {"no empty line", "text\n" + sig_line},
      {"no signature lines", "text\n\n"},
      {"CRLF line endings",
       Replace(Replace(kExampleNote, "message.\n\n", "message.\r\n\r\n"), "=\n", "=\r\n")},
      {"carriage return in text", Replace(kExampleNote, "This is", "This\ris")},
      {"tab in text", Replace(kExampleNote, "This is", "This\tis")},
      {"NUL in text", Replace(kExampleNote, "This is", std::string("This\0is", 7))},
      {"invalid UTF-8 byte", Replace(kExampleNote, "This is", "This \xff is")},
      {"overlong UTF-8", Replace(kExampleNote, "This is", "This \xc0\xaf is")},
      {"UTF-8 surrogate", Replace(kExampleNote, "This is", "This \xed\xa0\x80 is")},
      {"UTF-8 above U+10FFFF", Replace(kExampleNote, "This is", "This \xf4\x90\x80\x80 is")},
      {"truncated UTF-8", "text \xe2\x80\n\n" + sig_line},
      {"no final newline", std::string(kExampleNote.substr(0, kExampleNote.size() - 1))},
      {"trailing garbage", std::string(kExampleNote) + "garbage"},
      {"trailing line", std::string(kExampleNote) + "garbage\n"},
      {"hyphen instead of em dash", Replace(kExampleNote, kDash, "- ")},
      {"em dash without space", Replace(kExampleNote, kDash, "\xE2\x80\x94")},
      {"en dash", Replace(kExampleNote, kDash, "\xE2\x80\x93 ")},
      {"no space after name", Replace(kExampleNote, "example.com/foo ", "example.com/foo")},
      {"empty key name", Replace(kExampleNote, "example.com/foo ", " ")},
      {"plus in key name", Replace(kExampleNote, "example.com/foo ", "example.com+foo ")},
      {"no-break space in key name", Replace(kExampleNote, "example.com/foo ",
                                             "example.com\xc2\xa0"
                                             "foo ")},
      {"two spaces", Replace(kExampleNote, "example.com/foo ", "example.com/foo  ")},
      {"unpadded base64", Replace(kExampleNote, "aQM=", "aQM")},
      {"base64url alphabet", Replace(kExampleNote, "cAlTgK7Ztg1E", "cAlTgK7Ztg1_")},
      {"non-canonical base64", Replace(kExampleNote, "aQM=", "aQN=")},
      {"space in base64", Replace(kExampleNote, "cAlTgK7Ztg1E", "cAlTgK7 tg1E")},
      {"signature of 4 bytes", Replace(kExampleNote, b64, "Uw2QOg==")},
      {"empty signature", Replace(kExampleNote, b64, "")},
      {"too large", std::string(kMaxNoteSize, 'a') + "\n\n" + sig_line},
  };
  std::string many = "text\n\n";
  for (size_t i = 0; i <= kMaxNoteSignatures; ++i) many += sig_line;
  cases.push_back({"101 signature lines", many});
  for (const Case& c : cases) {
    auto note = ParseNote(c.note);
    ASSERT_FALSE(note.ok()) << c.description;
    EXPECT_EQ(CodeOf(note), ErrorCode::kInvalidArgument) << c.description;
    // Opening refuses it the same way before looking at signatures.
    const std::vector<VerifierKey> keys = {MustParseKey(kExampleKey)};
    EXPECT_EQ(CodeOf(OpenNote(c.note, keys)), ErrorCode::kInvalidArgument) << c.description;
  }
}

TEST(NoteParseTest, AcceptsOneHundredSignatureLines) {
  const std::string sig_line = std::string(kExampleNote.substr(kExampleNote.find(kDash)));
  std::string note = "This is an example message.\n\n";
  for (size_t i = 0; i < kMaxNoteSignatures; ++i) note += sig_line;
  auto parsed = ParseNote(note);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->signatures.size(), kMaxNoteSignatures);
  // Repeats of a trusted key: the first verifies, the rest are skipped.
  const std::vector<VerifierKey> keys = {MustParseKey(kExampleKey)};
  auto opened = OpenNote(note, keys);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(opened->verified.size(), 1u);
  EXPECT_EQ(opened->others.size(), kMaxNoteSignatures - 1);
}

TEST(NoteParseTest, TextMayContainEmptyLinesAndUnicode) {
  const TestEd25519Key key;
  const NoteSigner signer = key.ForName("signet.example/test");
  const std::string text = "first\n\nthird \xE2\x80\x94 caf\xC3\xA9 \xF0\x9F\x94\x91\n";
  auto note = SignNote(text, std::span(&signer, 1));
  ASSERT_TRUE(note.ok()) << note.error().message();
  const std::vector<VerifierKey> keys = {signer.key};
  auto opened = OpenNote(*note, keys);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(opened->text, text);
}

TEST(NoteParseTest, SplitsAtTheLastEmptyLine) {
  // An empty line followed by what looks like a signature line is still text: only the block
  // after the last empty line holds signatures.
  const std::string sig_line = std::string(kExampleNote.substr(kExampleNote.find(kDash)));
  auto note = ParseNote(std::string(kExampleNote) + "\n" + sig_line);
  ASSERT_TRUE(note.ok()) << note.error().message();
  EXPECT_EQ(note->text, "This is an example message.\n\n" + sig_line);
  EXPECT_EQ(note->signatures.size(), 1u);
}

TEST(NoteParseTest, FormatNoteRefusesWhatCouldNotBeParsedBack) {
  Note note = *ParseNote(kExampleNote);
  Note no_newline = note;
  no_newline.text = "no newline";
  EXPECT_EQ(CodeOf(FormatNote(no_newline)), ErrorCode::kInvalidArgument);
  Note bad_name = note;
  bad_name.signatures[0].key_name = "two words";
  EXPECT_EQ(CodeOf(FormatNote(bad_name)), ErrorCode::kInvalidArgument);
  Note empty_signature = note;
  empty_signature.signatures[0].signature.clear();
  EXPECT_EQ(CodeOf(FormatNote(empty_signature)), ErrorCode::kInvalidArgument);
  Note unsigned_note = note;
  unsigned_note.signatures.clear();
  EXPECT_EQ(CodeOf(FormatNote(unsigned_note)), ErrorCode::kInvalidArgument);
}

// --- Verification --------------------------------------------------------------------------------

TEST(NoteVerifyTest, TamperedTextIsDataLoss) {
  const std::vector<VerifierKey> keys = {MustParseKey(kExampleKey)};
  ASSERT_TRUE(OpenNote(kExampleNote, keys).ok());
  auto tampered = OpenNote(Replace(kExampleNote, "example message", "exemplary message"), keys);
  ASSERT_FALSE(tampered.ok());
  EXPECT_EQ(CodeOf(tampered), ErrorCode::kDataLoss);
  EXPECT_NE(tampered.error().message().find("\"example.com/foo\" (key ID 530d903a)"),
            std::string::npos)
      << tampered.error().message();
}

TEST(NoteVerifyTest, TamperedSignatureIsDataLoss) {
  const std::vector<VerifierKey> keys = {MustParseKey(kExampleKey)};
  auto tampered = OpenNote(Replace(kExampleNote, "cAlTgK7Ztg1E", "cAlTgK7Ztg1F"), keys);
  ASSERT_FALSE(tampered.ok());
  EXPECT_EQ(CodeOf(tampered), ErrorCode::kDataLoss);
}

TEST(NoteVerifyTest, NoteFromUnknownSignersOnlyIsUnauthenticated) {
  const TestEd25519Key other;
  const std::vector<VerifierKey> keys = {other.ForName("example.com/foo").key};
  // Same name, different key (so a different key ID): the line is not the trusted key's.
  auto opened = OpenNote(kExampleNote, keys);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(CodeOf(opened), ErrorCode::kUnauthenticated);
  EXPECT_EQ(CodeOf(OpenNote(kExampleNote, {})), ErrorCode::kUnauthenticated);
}

TEST(NoteVerifyTest, AFailingTrustedLineRejectsTheNoteEvenIfAnotherVerifies) {
  const TestEd25519Key a, b;
  const std::vector<NoteSigner> signers = {a.ForName("a.example"), b.ForName("b.example")};
  auto note = SignNote("hello\n", signers);
  ASSERT_TRUE(note.ok());
  // Break b's signature; a's still verifies.
  Note parsed = *ParseNote(*note);
  parsed.signatures[1].signature[0] ^= 1;
  const std::string broken = *FormatNote(parsed);
  const std::vector<VerifierKey> only_a = {signers[0].key};
  auto with_a = OpenNote(broken, only_a);
  ASSERT_TRUE(with_a.ok());  // b is not trusted here, so its line is just kept.
  EXPECT_EQ(with_a->others.size(), 1u);
  const std::vector<VerifierKey> both = {signers[0].key, signers[1].key};
  EXPECT_EQ(CodeOf(OpenNote(broken, both)), ErrorCode::kDataLoss);
}

TEST(NoteVerifyTest, OnlyTheFirstLineOfATrustedKeyIsChecked) {
  const TestEd25519Key key;
  const NoteSigner signer = key.ForName("signet.example/log");
  auto note = SignNote("entry\n", std::span(&signer, 1));
  ASSERT_TRUE(note.ok());
  Note parsed = *ParseNote(*note);
  NoteSignature broken = parsed.signatures[0];
  broken.signature[5] ^= 0x80;
  const std::vector<VerifierKey> keys = {signer.key};

  Note good_then_bad = parsed;
  good_then_bad.signatures.push_back(broken);
  auto first_good = OpenNote(*FormatNote(good_then_bad), keys);
  ASSERT_TRUE(first_good.ok());
  EXPECT_EQ(first_good->others.size(), 1u);

  Note bad_then_good = parsed;
  bad_then_good.signatures.insert(bad_then_good.signatures.begin(), broken);
  EXPECT_EQ(CodeOf(OpenNote(*FormatNote(bad_then_good), keys)), ErrorCode::kDataLoss);
}

TEST(NoteVerifyTest, RejectsBadTrustedKeys) {
  VerifierKey key = MustParseKey(kExampleKey);
  const std::vector<VerifierKey> twice = {key, key};
  EXPECT_EQ(CodeOf(OpenNote(kExampleNote, twice)), ErrorCode::kInvalidArgument);
  VerifierKey wrong_id = key;
  wrong_id.key_id ^= 1;
  const std::vector<VerifierKey> wrong = {wrong_id};
  auto opened = OpenNote(kExampleNote, wrong);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(CodeOf(opened), ErrorCode::kInvalidArgument);
  EXPECT_NE(opened.error().message().find("does not match"), std::string::npos);
}

TEST(NoteVerifyTest, ABrokenEcdsaTrustedKeyIsInvalidArgumentNotDataLoss) {
  VerifierKey key;
  key.name = "ecdsa.example";
  key.type = SignatureType::kEcdsaP256;
  key.public_key = {0x30, 0x03, 0x02, 0x01, 0x01};  // DER, but not a SubjectPublicKeyInfo.
  key.key_id = ComputeKeyId(key);
  Note note;
  note.text = "text\n";
  note.signatures.push_back(NoteSignature{key.name, key.key_id, Bytes(70, 1)});
  const std::vector<VerifierKey> keys = {key};
  auto opened = OpenNote(*FormatNote(note), keys);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(CodeOf(opened), ErrorCode::kInvalidArgument);
  EXPECT_NE(opened.error().message().find("SubjectPublicKeyInfo"), std::string::npos);
  EXPECT_EQ(CodeOf(ParseVerifierKey(FormatVerifierKey(key))), ErrorCode::kInvalidArgument);
}

TEST(NoteVerifyTest, Rfc6962SignatureDoesNotCoverExtensionLines) {
  const json notes = LoadSignedNotes();
  const json& n = FindNote(notes, "rome-ct-rfc6962-checkpoint");
  ASSERT_TRUE(n.contains("note"));
  const std::vector<VerifierKey> keys = {MustParseKey(n["vkey"].get<std::string>())};
  const std::string note = n["note"].get<std::string>();
  ASSERT_TRUE(OpenNote(note, keys).ok());
  const std::string extended = Replace(note, "4xCw=\n\n", "4xCw=\nunsigned extension\n\n");
  auto opened = OpenNote(extended, keys);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(CodeOf(opened), ErrorCode::kDataLoss);
  EXPECT_NE(opened.error().message().find("extension"), std::string::npos);
}

// --- Verifier keys -------------------------------------------------------------------------------

TEST(VerifierKeyTest, ParsesTheC2spExampleKey) {
  auto key = ParseVerifierKey(kExampleKey);
  ASSERT_TRUE(key.ok()) << key.error().message();
  EXPECT_EQ(key->name, "example.com/foo");
  EXPECT_EQ(key->key_id, 0x530d903au);
  EXPECT_EQ(key->type, SignatureType::kEd25519);
  EXPECT_EQ(key->public_key.size(), 32u);
  EXPECT_EQ(ComputeKeyId(*key), key->key_id);
  EXPECT_EQ(FormatVerifierKey(*key), kExampleKey);
  auto made = NewEd25519VerifierKey("example.com/foo", key->public_key);
  ASSERT_TRUE(made.ok());
  EXPECT_EQ(*made, *key);
}

TEST(VerifierKeyTest, RejectsMalformedKeys) {
  const std::string b64 = "AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
  // 0x04 (cosignature) + the same key: a type this verifier does not take.
  Bytes cosig = *Base64Decode(b64);
  cosig[0] = 0x04;
  Bytes ecdsa = cosig;
  ecdsa[0] = 0x02;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"wrong key ID", "example.com/foo+530d903b+" + b64},
      {"upper-case hex", "example.com/foo+530D903A+" + b64},
      {"short key ID", "example.com/foo+530d903+" + b64},
      {"long key ID", "example.com/foo+530d903a0+" + b64},
      {"missing key", "example.com/foo+530d903a"},
      {"missing parts", "example.com/foo"},
      {"empty", ""},
      {"empty name", "+530d903a+" + b64},
      {"space in name", "example com+530d903a+" + b64},
      {"unpadded base64", "example.com/foo+530d903a+" + b64.substr(0, 43)},
      {"truncated key",
       "example.com/foo+530d903a+" + Base64Encode(ByteView(*Base64Decode(b64)).first(32))},
      {"unsupported type", "example.com/foo+530d903a+" + Base64Encode(cosig)},
      {"ECDSA type with an Ed25519 key", "example.com/foo+530d903a+" + Base64Encode(ecdsa)},
      {"too long", "example.com/foo+530d903a+" + std::string(5000, 'A')},
  };
  for (const auto& [description, vkey] : cases) {
    auto key = ParseVerifierKey(vkey);
    ASSERT_FALSE(key.ok()) << description;
    EXPECT_EQ(CodeOf(key), ErrorCode::kInvalidArgument) << description;
  }
}

TEST(VerifierKeyTest, EcdsaKeysMustBeP256) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_secp384r1), 1);
  EVP_PKEY* raw = nullptr;
  ASSERT_EQ(EVP_PKEY_keygen(ctx.get(), &raw), 1);
  PkeyPtr p384(raw);
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(p384.get(), &der);
  ASSERT_GT(length, 0);
  VerifierKey key;
  key.name = "p384.example";
  key.type = SignatureType::kEcdsaP256;
  key.public_key.assign(der, der + length);
  OPENSSL_free(der);
  key.key_id = ComputeKeyId(key);
  auto parsed = ParseVerifierKey(FormatVerifierKey(key));
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message().find("P-256"), std::string::npos);
}

TEST(VerifierKeyTest, NewEd25519VerifierKeyChecksItsInputs) {
  EXPECT_EQ(CodeOf(NewEd25519VerifierKey("example.com/foo", Bytes(31))),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(NewEd25519VerifierKey("bad name", Bytes(32))), ErrorCode::kInvalidArgument);
  EXPECT_EQ(NewEd25519VerifierKey(std::string(kMaxKeyNameSize + 1, 'a'), Bytes(32)).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_TRUE(NewEd25519VerifierKey(std::string(kMaxKeyNameSize, 'a'), Bytes(32)).ok());
}

// --- Signing -------------------------------------------------------------------------------------

TEST(SignNoteTest, SignedCheckpointRoundTripsThroughOpenCheckpoint) {
  const TestEd25519Key key;
  const NoteSigner signer = key.ForName("signet.example/prod");
  Checkpoint checkpoint;
  checkpoint.origin = "signet.example/prod";
  checkpoint.size = TreeSize(1234);
  checkpoint.root = HashLeaf(AsBytes("some root"));
  checkpoint.extensions = {"extension one", "\xE2\x80\x94 two"};
  auto note = SignCheckpoint(checkpoint, std::span(&signer, 1));
  ASSERT_TRUE(note.ok()) << note.error().message();
  EXPECT_TRUE(note->starts_with("signet.example/prod\n1234\n"));

  // The verifier key travels as text (what `signet audit key` prints).
  const std::vector<VerifierKey> keys = {MustParseKey(FormatVerifierKey(signer.key))};
  auto opened = OpenCheckpoint(*note, "signet.example/prod", keys);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(opened->checkpoint, checkpoint);

  // Any single-byte change anywhere in the note is refused.
  for (size_t i = 0; i < note->size(); ++i) {
    std::string changed = *note;
    changed[i] = static_cast<char>(changed[i] ^ 0x01);
    EXPECT_FALSE(OpenCheckpoint(changed, "signet.example/prod", keys).ok()) << "byte " << i;
  }
}

TEST(SignNoteTest, SignsWithEveryKeyInOrder) {
  const TestEd25519Key a, b;
  const std::vector<NoteSigner> signers = {a.ForName("a.example"), b.ForName("b.example")};
  auto note = SignNote("two signers\n", signers);
  ASSERT_TRUE(note.ok());
  Note parsed = *ParseNote(*note);
  ASSERT_EQ(parsed.signatures.size(), 2u);
  EXPECT_EQ(parsed.signatures[0].key_name, "a.example");
  EXPECT_EQ(parsed.signatures[1].key_name, "b.example");
  const std::vector<VerifierKey> both = {signers[1].key, signers[0].key};
  EXPECT_EQ(OpenNote(*note, both)->verified.size(), 2u);
}

TEST(SignNoteTest, PassesSignerErrorsThrough) {
  const TestEd25519Key key;
  NoteSigner signer = key.ForName("signet.example/log");
  signer.sign = [](ByteView) -> Result<Bytes> { return Unavailable("HSM session lost"); };
  auto note = SignNote("x\n", std::span(&signer, 1));
  ASSERT_FALSE(note.ok());
  EXPECT_EQ(CodeOf(note), ErrorCode::kUnavailable);
  EXPECT_NE(note.error().message().find("HSM session lost"), std::string::npos);
}

TEST(SignNoteTest, RefusesSignaturesThatDoNotVerifyWithTheSignersKey) {
  const TestEd25519Key key, other;
  NoteSigner mixed_up = key.ForName("signet.example/log");
  mixed_up.sign = other.Signer();
  auto wrong_key = SignNote("x\n", std::span(&mixed_up, 1));
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_EQ(CodeOf(wrong_key), ErrorCode::kInternal);

  NoteSigner short_signature = key.ForName("signet.example/log");
  short_signature.sign = [](ByteView) -> Result<Bytes> { return Bytes(63); };
  EXPECT_EQ(CodeOf(SignNote("x\n", std::span(&short_signature, 1))), ErrorCode::kInternal);
}

TEST(SignNoteTest, RefusesBadTextAndSigners) {
  const TestEd25519Key key;
  const NoteSigner signer = key.ForName("signet.example/log");
  for (std::string_view text : {"", "no newline", "cr\r\n", "tab\t\n", "\xff\n"}) {
    EXPECT_EQ(CodeOf(SignNote(text, std::span(&signer, 1))), ErrorCode::kInvalidArgument) << text;
  }
  EXPECT_EQ(CodeOf(SignNote("x\n", {})), ErrorCode::kInvalidArgument);
  const std::vector<NoteSigner> twice = {signer, signer};
  EXPECT_EQ(CodeOf(SignNote("x\n", twice)), ErrorCode::kInvalidArgument);
  NoteSigner ecdsa = signer;
  ecdsa.key.type = SignatureType::kEcdsaP256;
  EXPECT_EQ(CodeOf(SignNote("x\n", std::span(&ecdsa, 1))), ErrorCode::kInvalidArgument);
  NoteSigner no_callback = signer;
  no_callback.sign = nullptr;
  EXPECT_EQ(CodeOf(SignNote("x\n", std::span(&no_callback, 1))), ErrorCode::kInvalidArgument);
}

// --- Checkpoints ---------------------------------------------------------------------------------

constexpr std::string_view kRoot = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
constexpr std::string_view kEmptyRoot = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

TEST(CheckpointTest, ParsesAndFormatsWithExtensions) {
  const std::string text = "log.example/a\n42\n" + std::string(kRoot) + "\next 1\next 2\n";
  auto checkpoint = ParseCheckpoint(text);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.error().message();
  EXPECT_EQ(checkpoint->origin, "log.example/a");
  EXPECT_EQ(checkpoint->size, TreeSize(42));
  EXPECT_EQ(checkpoint->extensions, (std::vector<std::string>{"ext 1", "ext 2"}));
  EXPECT_EQ(*FormatCheckpoint(*checkpoint), text);
}

TEST(CheckpointTest, AcceptsSizeZeroWithTheEmptyRootAndTheLargestSize) {
  auto empty = ParseCheckpoint("log.example/a\n0\n" + std::string(kEmptyRoot) + "\n");
  ASSERT_TRUE(empty.ok()) << empty.error().message();
  EXPECT_EQ(empty->root, EmptyRoot());
  auto largest = ParseCheckpoint("o\n18446744073709551615\n" + std::string(kRoot) + "\n");
  ASSERT_TRUE(largest.ok()) << largest.error().message();
  EXPECT_EQ(largest->size, TreeSize(~uint64_t{0}));
}

TEST(CheckpointTest, RejectsMalformedCheckpoints) {
  const std::string root(kRoot);
  auto with_size = [&](std::string_view size) {
    return "o\n" + std::string(size) + "\n" + root + "\n";
  };
  std::string many_extensions = with_size("1");
  for (size_t i = 0; i <= kMaxCheckpointExtensions; ++i) many_extensions += "e\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"leading zero", with_size("01")},
      {"plus sign", with_size("+1")},
      {"minus sign", with_size("-1")},
      {"leading space", with_size(" 1")},
      {"trailing space", with_size("1 ")},
      {"empty size", with_size("")},
      {"hex size", with_size("0x10")},
      {"2^64", with_size("18446744073709551616")},
      {"21 digits", with_size("100000000000000000000")},
      {"size 0 with another root", with_size("0")},
      {"short root", "o\n1\n" + Base64Encode(Bytes(31)) + "\n"},
      {"long root", "o\n1\n" + Base64Encode(Bytes(33)) + "\n"},
      {"unpadded root", "o\n1\n" + root.substr(0, 43) + "\n"},
      {"non-canonical root", "o\n1\n" + Replace(root, "q2I=", "q2J=") + "\n"},
      {"hex root", "o\n1\n" + HexEncode(Bytes(32)) + "\n"},
      {"empty origin", "\n1\n" + root + "\n"},
      {"empty extension line", with_size("1") + "\n"},
      {"empty line between extensions", with_size("1") + "a\n\nb\n"},
      {"only two lines", "o\n1\n"},
      {"no final newline", "o\n1\n" + root},
      {"CRLF", "o\r\n1\r\n" + root + "\r\n"},
      {"65 extension lines", many_extensions},
      {"invalid UTF-8 origin", "\xc3\n1\n" + root + "\n"},
  };
  for (const auto& [description, text] : cases) {
    auto checkpoint = ParseCheckpoint(text);
    ASSERT_FALSE(checkpoint.ok()) << description;
    EXPECT_EQ(CodeOf(checkpoint), ErrorCode::kInvalidArgument) << description;
  }
}

TEST(CheckpointTest, FormatRefusesWhatWouldNotParseBack) {
  Checkpoint checkpoint;
  checkpoint.origin = "two\nlines";
  checkpoint.size = TreeSize(1);
  EXPECT_EQ(CodeOf(FormatCheckpoint(checkpoint)), ErrorCode::kInvalidArgument);
  checkpoint.origin = "o";
  checkpoint.extensions = {""};
  EXPECT_EQ(CodeOf(FormatCheckpoint(checkpoint)), ErrorCode::kInvalidArgument);
  checkpoint.extensions = {"a\nb"};
  EXPECT_EQ(CodeOf(FormatCheckpoint(checkpoint)), ErrorCode::kInvalidArgument);
  checkpoint.extensions.clear();
  checkpoint.size = TreeSize(0);  // Root is all zeros, not SHA-256("").
  EXPECT_EQ(CodeOf(FormatCheckpoint(checkpoint)), ErrorCode::kInvalidArgument);
  checkpoint.root = EmptyRoot();
  EXPECT_TRUE(FormatCheckpoint(checkpoint).ok());
}

TEST(CheckpointTest, OpenCheckpointNeedsACheckpointBody) {
  const TestEd25519Key key;
  const NoteSigner signer = key.ForName("signet.example/prod");
  auto note = SignNote("not a checkpoint\n", std::span(&signer, 1));
  ASSERT_TRUE(note.ok());
  const std::vector<VerifierKey> keys = {signer.key};
  auto opened = OpenCheckpoint(*note, "signet.example/prod", keys);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(CodeOf(opened), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace signet::audit
