// audit/note: C2SP signed notes (c2sp.org/signed-note v1.0.0) and the tlog-checkpoint body they
// carry (c2sp.org/tlog-checkpoint): parsing, strict validation, signature verification, formatting
// and signing through a callback (signet's checkpoint key lives in the HSM).
//
// A signed note is UTF-8 text, LF line endings only, laid out byte-exactly as
//
//   <text: one or more lines, each ending in "\n">   the signed message, final newline included
//   "\n"                                              one empty line
//   "— <key name> <base64(key ID[4] || signature)>\n" one line per signature, at least one
//
// (the dash is U+2014 EM DASH followed by a space). The note is split at its last "\n\n".
//
// Signature types understood when verifying (the byte after the key name's newline in the key-ID
// preimage, and the first byte of a verifier key's base64 part):
//   0x01 Ed25519 (signed-note): pure Ed25519 over the text; key ID = SHA-256(name || 0x0A || 0x01
//        || 32-byte public key)[0:4]. The only type signet signs with.
//   0x02 ECDSA P-256 (transparency-dev, Sigstore Rekor): DER ECDSA over SHA-256(text); key ID =
//        SHA-256(SubjectPublicKeyInfo DER)[0:4].
//   0x05 RFC 6962 tree head (c2sp.org/static-ct-api): covers only size and root of a checkpoint
//        text, so verification also requires origin == key name and no extension lines; key ID =
//        SHA-256(name || 0x0A || 0x05 || SHA-256(SPKI DER))[0:4]. P-256 keys only.
// A line's type is that of the trusted key it names; lines naming keys not given to the verifier
// (whatever their type) are ignored and kept as "others". Verifier keys of other types (0x04
// cosignatures, 0x06 ML-DSA, ...) are refused by ParseVerifierKey.
//
// Threads: every function is a pure function of its arguments (and, for SignNote, the signer
// callbacks, called on the calling thread) and safe to call concurrently.
//
// Errors:
//   - InvalidArgument: malformed note, checkpoint, key name or verifier key; unsupported key type;
//     a note over a limit below; a checkpoint from another origin than expected.
//   - Unauthenticated: a well-formed note with no signature line from any of the trusted keys.
//   - DataLoss: a line from a trusted key whose signature does not verify (the note was altered or
//     forged; per the spec the whole note is rejected, not just the line).
//   - Internal: a signer returned something that is not a valid signature for its public key.
//   Errors of a signer callback are returned unchanged (with context).
//
// Limits (inputs over them are refused before any other work):
//   kMaxNoteSize bytes per note (text and signatures), kMaxNoteSignatures signature lines (the
//   spec requires accepting at least 16), kMaxKeyNameSize bytes per key name, kMaxCheckpoint-
//   Extensions extension lines per checkpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.h"
#include "common/bytes.h"
#include "common/result.h"

namespace signet::audit {

inline constexpr size_t kMaxNoteSize = 1'000'000;
inline constexpr size_t kMaxNoteSignatures = 100;
inline constexpr size_t kMaxKeyNameSize = 256;
inline constexpr size_t kMaxCheckpointExtensions = 64;

enum class SignatureType : uint8_t {
  kEd25519 = 0x01,
  kEcdsaP256 = 0x02,
  kRfc6962TreeHead = 0x05,
};

// One signature line, decoded. `signature` is what follows the 4-byte key ID (for Ed25519 the
// 64-byte signature; at least one byte).
struct NoteSignature {
  std::string key_name;
  uint32_t key_id = 0;  // The first four bytes of the decoded base64, big-endian.
  Bytes signature;
  friend bool operator==(const NoteSignature&, const NoteSignature&) = default;
};

// A parsed but unverified note. Nothing in `text` may be trusted before OpenNote succeeds.
struct Note {
  std::string text;  // Ends in "\n"; the exact bytes that were signed.
  std::vector<NoteSignature> signatures;
  friend bool operator==(const Note&, const Note&) = default;
};

// Splits and checks a note: size, UTF-8 (shortest forms, no surrogates), no control character
// but "\n" anywhere, the blank line, every signature line (key name rules as below, canonical
// padded standard base64 of at least 5 bytes), at most kMaxNoteSignatures lines, and nothing
// after the final "\n". Does not verify any signature. InvalidArgument naming the line otherwise.
Result<Note> ParseNote(std::string_view note);

// The exact bytes of `note`, checked by the same rules as ParseNote (so ParseNote(FormatNote(n))
// == n). InvalidArgument if the note could not be parsed back.
Result<std::string> FormatNote(const Note& note);

// Key names: 1..kMaxKeyNameSize bytes of UTF-8 with no Unicode white space, no control character
// and no '+'. Recommended form: a scheme-less URL such as "signet.example/prod".
Status CheckKeyName(std::string_view name);

// A public key a verifier trusts, as written in the signed-note verifier-key form
// "<name>+<8 lowercase hex digits of the key ID>+<base64(type byte || public key)>".
struct VerifierKey {
  std::string name;
  uint32_t key_id = 0;
  SignatureType type = SignatureType::kEd25519;
  // kEd25519: the 32-byte public key; kEcdsaP256 and kRfc6962TreeHead: a DER
  // SubjectPublicKeyInfo of a P-256 key.
  Bytes public_key;
  friend bool operator==(const VerifierKey&, const VerifierKey&) = default;
};

// Parses a verifier key (split on the first two '+'; base64 may contain more). Checks the name,
// the key-ID syntax, the type and key encoding, and that the key ID is the one the name and key
// imply. InvalidArgument (unsupported type included) otherwise.
Result<VerifierKey> ParseVerifierKey(std::string_view vkey);

// The verifier-key string of `key` (no validation; use keys from ParseVerifierKey or
// NewEd25519VerifierKey).
std::string FormatVerifierKey(const VerifierKey& key);

// The verifier key of an Ed25519 public key (exactly 32 bytes) under `name`, with its key ID
// computed. InvalidArgument for a bad name or key length. This is what `signet audit key` prints.
Result<VerifierKey> NewEd25519VerifierKey(std::string_view name, ByteView public_key);

// The key ID that `key.name`, `key.type` and `key.public_key` imply (ignores key.key_id).
uint32_t ComputeKeyId(const VerifierKey& key);

// The result of opening a note: its text, now authenticated by at least one trusted key.
struct VerifiedNote {
  std::string text;
  // Signatures by trusted keys that verified, in note order, at most one per key.
  std::vector<NoteSignature> verified;
  // Lines by keys not trusted here, of unknown type, or repeats of a trusted key (not checked):
  // kept so that a note can be re-emitted with its other signatures (e.g. cosignatures).
  std::vector<NoteSignature> others;
};

// Parses `note` and verifies it against `trusted_keys`: a line counts only if both its key name
// and key ID match a trusted key; the first line of each trusted key is verified and later ones are
// skipped. Succeeds iff at least one line verified and none of the checked ones failed.
// InvalidArgument for a malformed note or bad/duplicate trusted keys (the DER of an ECDSA key is
// decoded, and so checked, only when a line of that key is verified); Unauthenticated if no line
// is from a trusted key; DataLoss if a trusted key's line does not verify.
Result<VerifiedNote> OpenNote(std::string_view note, std::span<const VerifierKey> trusted_keys);

// Signs `message` (the exact note text) with the private key matching a public Ed25519 key and
// returns the 64-byte signature (e.g. a PKCS#11 CKM_EDDSA call in the HSM). Errors are passed back
// to the caller of SignNote.
using MessageSigner = std::function<Result<Bytes>(ByteView message)>;

struct NoteSigner {
  VerifierKey key;  // Must be an Ed25519 key with a correct key ID.
  MessageSigner sign;
};

// Signs `text` with each signer, in order, and returns the formatted note. Text must be non-empty,
// end in "\n", be UTF-8 without control characters other than "\n". Each signature is checked
// against the signer's public key before it is used (Internal if it does not verify, so a mixed-up
// HSM key never produces a note nobody can open). At least one signer, no key twice.
Result<std::string> SignNote(std::string_view text, std::span<const NoteSigner> signers);

// --- Checkpoints (c2sp.org/tlog-checkpoint) -----------------------------------------------------

// The body of a checkpoint note:
//   <origin>\n                  non-empty, unique identity of the log (SHOULD be the key name)
//   <tree size>\n               ASCII decimal, no sign, no leading zeros, fits uint64
//   <base64 root hash>\n        canonical padded base64 of 32 bytes; SHA-256("") for size 0
//   [<extension line>\n]...     each non-empty, at most kMaxCheckpointExtensions
struct Checkpoint {
  std::string origin;
  TreeSize size;
  Sha256Digest root{};
  std::vector<std::string> extensions;
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// Parses a checkpoint note's text strictly (all of the rules above; no empty lines, nothing
// after the last "\n"; text limits as for notes). InvalidArgument naming the line otherwise.
Result<Checkpoint> ParseCheckpoint(std::string_view text);

// The text of `checkpoint`, checked by the rules above (so ParseCheckpoint(text) == checkpoint).
Result<std::string> FormatCheckpoint(const Checkpoint& checkpoint);

struct VerifiedCheckpoint {
  Checkpoint checkpoint;
  VerifiedNote note;
};

// OpenNote, then ParseCheckpoint of the authenticated text, then origin == `expected_origin`
// (InvalidArgument naming both otherwise). The text is not interpreted before a trusted signature
// has verified (type 0x05 aside, whose verification needs size and root).
Result<VerifiedCheckpoint> OpenCheckpoint(std::string_view note, std::string_view expected_origin,
                                          std::span<const VerifierKey> trusted_keys);

// FormatCheckpoint, then SignNote.
Result<std::string> SignCheckpoint(const Checkpoint& checkpoint,
                                   std::span<const NoteSigner> signers);

}  // namespace signet::audit
