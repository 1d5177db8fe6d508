#include "audit/note.h"

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <utility>

#include "audit/internal/crypto.h"
#include "common/encoding.h"

namespace signet::audit {
namespace {

// U+2014 EM DASH and a space: how every signature line starts.
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";
constexpr size_t kKeyIdSize = 4;
constexpr size_t kMaxVerifierKeySize = 4096;

std::string Str(uint64_t v) { return std::to_string(v); }

// Untrusted text made safe to quote in an error message: printable ASCII kept, everything else
// as \xNN, at most 48 input bytes.
std::string Quote(std::string_view text) {
  constexpr size_t kMaxQuoted = 48;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (text.size() > kMaxQuoted) out += "...";
  out += "\"";
  return out;
}

std::string KeyIdHex(uint32_t key_id) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out(8, '0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[key_id & 15];
    key_id >>= 4;
  }
  return out;
}

std::string DescribeKey(std::string_view name, uint32_t key_id) {
  return Quote(name) + " (key ID " + KeyIdHex(key_id) + ")";
}

uint32_t ReadUint32(ByteView b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

// Decodes the UTF-8 sequence at text[*pos] and advances *pos past it. Only shortest forms of
// scalar values (no surrogates, at most U+10FFFF) are accepted (RFC 3629 §4).
std::optional<char32_t> NextCodePoint(std::string_view text, size_t* pos) {
  const auto lead = static_cast<unsigned char>(text[*pos]);
  if (lead < 0x80) {
    ++*pos;
    return lead;
  }
  size_t length = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    cp = lead & 0x1F;
    min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    cp = lead & 0x0F;
    min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    cp = lead & 0x07;
    min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (text.size() - *pos < length) return std::nullopt;
  for (size_t i = 1; i < length; ++i) {
    const auto c = static_cast<unsigned char>(text[*pos + i]);
    if ((c & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  *pos += length;
  return cp;
}

// Note text and checkpoints: valid UTF-8, and no control character except LF (so CR, CRLF, tabs
// and NUL are all malformed).
Status CheckText(std::string_view text, std::string_view what) {
  size_t pos = 0;
  size_t line = 1;
  while (pos < text.size()) {
    const size_t start = pos;
    const auto cp = NextCodePoint(text, &pos);
    if (!cp) {
      return InvalidArgument(std::string(what) + " is not valid UTF-8 (line " + Str(line) +
                             ", byte " + Str(start) + ")");
    }
    if (*cp == '\n') {
      ++line;
    } else if (*cp < 0x20) {
      return InvalidArgument(std::string(what) + " contains control character 0x" +
                             KeyIdHex(*cp).substr(6) + " (line " + Str(line) +
                             "); only LF line endings are allowed");
    }
  }
  return OkStatus();
}

// Unicode White_Space (plus the C1 and DEL controls, which no key name needs).
bool IsSpaceOrControl(char32_t cp) {
  return cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

Status CheckNoteText(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return InvalidArgument("note text must be non-empty and end in a newline");
  }
  return CheckText(text, "note text");
}

Result<NoteSignature> ParseSignatureLine(std::string_view line, size_t number) {
  const std::string where = "signature line " + Str(number);
  if (!line.starts_with(kSignaturePrefix)) {
    return InvalidArgument(
        where + " must start with an em dash and a space (\"\xE2\x80\x94 \"), got " + Quote(line));
  }
  line.remove_prefix(kSignaturePrefix.size());
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) {
    return InvalidArgument(where + " must be \"\xE2\x80\x94 <key name> <base64 signature>\"");
  }
  const std::string_view name = line.substr(0, space);
  if (Status s = CheckKeyName(name); !s.ok()) return s.error().WithContext(where);
  auto decoded = Base64Decode(line.substr(space + 1));
  if (!decoded.ok()) return decoded.error().WithContext(where + ": signature of " + Quote(name));
  if (decoded->size() < kKeyIdSize + 1) {
    return InvalidArgument(where + ": the signature of " + Quote(name) +
                           " must hold a 4-byte key ID and at least one byte, got " +
                           Str(decoded->size()) + " bytes");
  }
  NoteSignature signature;
  signature.key_name = std::string(name);
  signature.key_id = ReadUint32(*decoded);
  signature.signature.assign(decoded->begin() + kKeyIdSize, decoded->end());
  return signature;
}

// "0" or 1..20 digits without a leading zero, at most 2^64 − 1.
Result<uint64_t> ParseTreeSize(std::string_view text) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) {
    return InvalidArgument("checkpoint tree size must be decimal without leading zeros, got " +
                           Quote(text));
  }
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return InvalidArgument("checkpoint tree size must be decimal digits only, got " +
                             Quote(text));
    }
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return InvalidArgument("checkpoint tree size " + Quote(text) + " does not fit 64 bits");
    }
    value = value * 10 + digit;
  }
  return value;
}

// Checks name, type, key encoding and key ID. `parse_spki` = false skips decoding ECDSA keys (the
// costly part, done anyway when such a key verifies a line) for keys checked on every OpenNote.
Status CheckVerifierKey(const VerifierKey& key, bool parse_spki) {
  SIGNET_TRY(CheckKeyName(key.name));
  switch (key.type) {
    case SignatureType::kEd25519:
      if (key.public_key.size() != internal::kEd25519PublicKeySize) {
        return InvalidArgument("Ed25519 public key of " + Quote(key.name) +
                               " must be 32 bytes, got " + Str(key.public_key.size()));
      }
      break;
    case SignatureType::kEcdsaP256:
    case SignatureType::kRfc6962TreeHead:
      if (!parse_spki) break;
      if (Status s = internal::CheckEcdsaP256Spki(key.public_key); !s.ok()) {
        return s.error().WithContext("key " + Quote(key.name));
      }
      break;
    default:
      return InvalidArgument("key " + Quote(key.name) + " has unsupported signature type 0x" +
                             KeyIdHex(static_cast<uint8_t>(key.type)).substr(6));
  }
  if (ComputeKeyId(key) != key.key_id) {
    return InvalidArgument("key ID " + KeyIdHex(key.key_id) + " of " + Quote(key.name) +
                           " does not match its name and public key (expected " +
                           KeyIdHex(ComputeKeyId(key)) + ")");
  }
  return OkStatus();
}

// c2sp.org/static-ct-api: the note signature is timestamp (8) || TLS DigitallySigned, over the
// RFC 6962 §3.5 TreeHeadSignature of the checkpoint's size and root. It does not cover the
// origin or extension lines, so those are pinned separately.
Status VerifyRfc6962TreeHead(const VerifierKey& key, std::string_view text, ByteView signature) {
  const std::string who = "RFC 6962 signature by " + DescribeKey(key.name, key.key_id);
  constexpr size_t kHeader = 8 + 2 + 2;  // timestamp, hash and signature algorithm, length
  if (signature.size() < kHeader) return DataLoss(who + " is truncated");
  const ByteView timestamp = signature.subspan(0, 8);
  const uint8_t hash_algorithm = signature[8];
  const uint8_t signature_algorithm = signature[9];
  const size_t length = (size_t{signature[10]} << 8) | size_t{signature[11]};
  if (signature.size() != kHeader + length) return DataLoss(who + " has a wrong length field");
  if (hash_algorithm != 4 || signature_algorithm != 3) {  // sha256, ecdsa (RFC 5246 §7.4.1.4.1)
    return DataLoss(who + " must be ECDSA with SHA-256");
  }
  auto checkpoint = ParseCheckpoint(text);
  if (!checkpoint.ok()) return checkpoint.error().WithContext(who + " needs a checkpoint");
  if (checkpoint->origin != key.name) {
    return DataLoss(who + " does not cover the origin, which must then equal the key name; got " +
                    Quote(checkpoint->origin));
  }
  if (!checkpoint->extensions.empty()) {
    return DataLoss(who + " does not cover the checkpoint's extension lines");
  }
  Bytes message = {0x00, 0x01};  // Version v1, SignatureType tree_hash.
  message.insert(message.end(), timestamp.begin(), timestamp.end());
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<uint8_t>(checkpoint->size.value() >> shift));
  }
  message.insert(message.end(), checkpoint->root.begin(), checkpoint->root.end());
  auto ok = internal::VerifyEcdsaP256Sha256(key.public_key, message, signature.subspan(kHeader));
  if (!ok.ok()) return ok.error().WithContext("trusted key " + Quote(key.name));
  if (!*ok) {
    return DataLoss(who + " does not verify: the checkpoint was altered or the signature forged");
  }
  return OkStatus();
}

Status VerifyLine(const VerifierKey& key, std::string_view text, const NoteSignature& line) {
  bool ok = false;
  switch (key.type) {
    case SignatureType::kEd25519:
      ok = internal::VerifyEd25519(key.public_key, AsBytes(text), line.signature);
      break;
    case SignatureType::kEcdsaP256: {
      auto verified =
          internal::VerifyEcdsaP256Sha256(key.public_key, AsBytes(text), line.signature);
      if (!verified.ok()) return verified.error().WithContext("trusted key " + Quote(key.name));
      ok = *verified;
      break;
    }
    case SignatureType::kRfc6962TreeHead:
      return VerifyRfc6962TreeHead(key, text, line.signature);
  }
  if (!ok) {
    return DataLoss("signature by " + DescribeKey(key.name, key.key_id) +
                    " does not verify: the note was altered or the signature forged");
  }
  return OkStatus();
}

Status CheckTrustedKeys(std::span<const VerifierKey> keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (Status s = CheckVerifierKey(keys[i], /*parse_spki=*/false); !s.ok()) {
      return s.error().WithContext("trusted key " + Str(i + 1));
    }
    for (size_t j = 0; j < i; ++j) {
      if (keys[j].name == keys[i].name && keys[j].key_id == keys[i].key_id) {
        return InvalidArgument("trusted key " + DescribeKey(keys[i].name, keys[i].key_id) +
                               " is given twice");
      }
    }
  }
  return OkStatus();
}

}  // namespace

// --- Notes --------------------------------------------------------------------------------------

Status CheckKeyName(std::string_view name) {
  if (name.empty() || name.size() > kMaxKeyNameSize) {
    return InvalidArgument("key name must be 1 to " + Str(kMaxKeyNameSize) + " bytes, got " +
                           Str(name.size()));
  }
  size_t pos = 0;
  while (pos < name.size()) {
    const auto cp = NextCodePoint(name, &pos);
    if (!cp) return InvalidArgument("key name " + Quote(name) + " is not valid UTF-8");
    if (IsSpaceOrControl(*cp) || *cp == '+') {
      return InvalidArgument("key name " + Quote(name) +
                             " must not contain white space, control characters or '+'");
    }
  }
  return OkStatus();
}

Result<Note> ParseNote(std::string_view note) {
  if (note.size() > kMaxNoteSize) {
    return InvalidArgument("note is " + Str(note.size()) + " bytes; at most " + Str(kMaxNoteSize) +
                           " are accepted");
  }
  SIGNET_TRY(CheckText(note, "note"));
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return InvalidArgument("note has no empty line between its text and its signatures");
  }
  Note parsed;
  parsed.text = std::string(note.substr(0, split + 1));
  std::string_view block = note.substr(split + 2);
  if (block.empty()) return InvalidArgument("note has no signature lines after its empty line");
  if (block.back() != '\n') {
    return InvalidArgument("the last signature line of the note does not end in a newline");
  }
  while (!block.empty()) {
    if (parsed.signatures.size() == kMaxNoteSignatures) {
      return InvalidArgument("note has more than " + Str(kMaxNoteSignatures) + " signature lines");
    }
    const size_t end = block.find('\n');  // Present: the block ends in a newline.
    SIGNET_ASSIGN_OR_RETURN(NoteSignature signature,
                            ParseSignatureLine(block.substr(0, end), parsed.signatures.size() + 1));
    parsed.signatures.push_back(std::move(signature));
    block.remove_prefix(end + 1);
  }
  return parsed;
}

Result<std::string> FormatNote(const Note& note) {
  SIGNET_TRY(CheckNoteText(note.text));
  std::string out = note.text;
  out += '\n';
  for (const NoteSignature& signature : note.signatures) {
    Bytes payload = {
        static_cast<uint8_t>(signature.key_id >> 24), static_cast<uint8_t>(signature.key_id >> 16),
        static_cast<uint8_t>(signature.key_id >> 8), static_cast<uint8_t>(signature.key_id)};
    payload.insert(payload.end(), signature.signature.begin(), signature.signature.end());
    out += kSignaturePrefix;
    out += signature.key_name;
    out += ' ';
    out += Base64Encode(payload);
    out += '\n';
  }
  // Parsing the result back applies every rule once, in one place, and proves the round trip.
  auto parsed = ParseNote(out);
  if (!parsed.ok()) return parsed.error().WithContext("cannot format note");
  if (*parsed != note) return InvalidArgument("cannot format note: it would not parse back as is");
  return out;
}

uint32_t ComputeKeyId(const VerifierKey& key) {
  const ByteView name = AsBytes(key.name);
  const uint8_t newline = '\n';
  const auto type = static_cast<uint8_t>(key.type);
  internal::Digest32 hash{};
  switch (key.type) {
    case SignatureType::kEd25519:
      hash = internal::Sha256({name, ByteView(&newline, 1), ByteView(&type, 1), key.public_key});
      break;
    case SignatureType::kEcdsaP256:
      hash = internal::Sha256({key.public_key});
      break;
    case SignatureType::kRfc6962TreeHead: {
      const internal::Digest32 spki_hash = internal::Sha256({key.public_key});
      hash = internal::Sha256({name, ByteView(&newline, 1), ByteView(&type, 1), spki_hash});
      break;
    }
    default:
      // No key ID is defined for other types; CheckVerifierKey refuses them first.
      hash = internal::Sha256({name, ByteView(&newline, 1), ByteView(&type, 1), key.public_key});
      break;
  }
  return ReadUint32(hash);
}

Result<VerifierKey> ParseVerifierKey(std::string_view vkey) {
  if (vkey.size() > kMaxVerifierKeySize) {
    return InvalidArgument("verifier key is longer than " + Str(kMaxVerifierKeySize) + " bytes");
  }
  // Split on the first two '+' only: the base64 part may contain more.
  const size_t first = vkey.find('+');
  const size_t second =
      first == std::string_view::npos ? std::string_view::npos : vkey.find('+', first + 1);
  if (second == std::string_view::npos) {
    return InvalidArgument("verifier key must be <name>+<hex key ID>+<base64 key>, got " +
                           Quote(vkey));
  }
  VerifierKey key;
  key.name = std::string(vkey.substr(0, first));
  SIGNET_TRY(CheckKeyName(key.name));
  const std::string_view id_hex = vkey.substr(first + 1, second - first - 1);
  if (id_hex.size() != 8 || !std::all_of(id_hex.begin(), id_hex.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return InvalidArgument("verifier key ID must be 8 lower-case hex digits, got " + Quote(id_hex));
  }
  key.key_id = ReadUint32(*HexDecode(id_hex));
  auto decoded = Base64Decode(vkey.substr(second + 1));
  if (!decoded.ok()) return decoded.error().WithContext("verifier key of " + Quote(key.name));
  if (decoded->empty()) return InvalidArgument("verifier key of " + Quote(key.name) + " is empty");
  const uint8_t type = (*decoded)[0];
  if (type != static_cast<uint8_t>(SignatureType::kEd25519) &&
      type != static_cast<uint8_t>(SignatureType::kEcdsaP256) &&
      type != static_cast<uint8_t>(SignatureType::kRfc6962TreeHead)) {
    return InvalidArgument("verifier key of " + Quote(key.name) +
                           " has unsupported signature type 0x" + KeyIdHex(type).substr(6) +
                           " (supported: 01 Ed25519, 02 ECDSA P-256, 05 RFC 6962 tree head)");
  }
  key.type = static_cast<SignatureType>(type);
  key.public_key.assign(decoded->begin() + 1, decoded->end());
  SIGNET_TRY(CheckVerifierKey(key, /*parse_spki=*/true));
  return key;
}

std::string FormatVerifierKey(const VerifierKey& key) {
  Bytes payload = {static_cast<uint8_t>(key.type)};
  payload.insert(payload.end(), key.public_key.begin(), key.public_key.end());
  return key.name + "+" + KeyIdHex(key.key_id) + "+" + Base64Encode(payload);
}

Result<VerifierKey> NewEd25519VerifierKey(std::string_view name, ByteView public_key) {
  VerifierKey key;
  key.name = std::string(name);
  key.type = SignatureType::kEd25519;
  key.public_key.assign(public_key.begin(), public_key.end());
  key.key_id = ComputeKeyId(key);
  SIGNET_TRY(CheckVerifierKey(key, /*parse_spki=*/true));
  return key;
}

Result<VerifiedNote> OpenNote(std::string_view note, std::span<const VerifierKey> trusted_keys) {
  SIGNET_TRY(CheckTrustedKeys(trusted_keys));
  SIGNET_ASSIGN_OR_RETURN(Note parsed, ParseNote(note));
  VerifiedNote result;
  std::vector<bool> seen(trusted_keys.size(), false);
  for (NoteSignature& line : parsed.signatures) {
    const auto key = std::find_if(trusted_keys.begin(), trusted_keys.end(), [&](const auto& k) {
      return k.name == line.key_name && k.key_id == line.key_id;
    });
    const auto index = static_cast<size_t>(key - trusted_keys.begin());
    if (key == trusted_keys.end() || seen[index]) {
      result.others.push_back(std::move(line));
      continue;
    }
    seen[index] = true;
    SIGNET_TRY(VerifyLine(*key, parsed.text, line));
    result.verified.push_back(std::move(line));
  }
  if (result.verified.empty()) {
    std::string trusted;
    for (const VerifierKey& key : trusted_keys) {
      trusted += (trusted.empty() ? "" : ", ") + DescribeKey(key.name, key.key_id);
    }
    return Unauthenticated("note carries no signature by a trusted key (trusted: " +
                           (trusted.empty() ? std::string("none") : trusted) + ")");
  }
  result.text = std::move(parsed.text);
  return result;
}

Result<std::string> SignNote(std::string_view text, std::span<const NoteSigner> signers) {
  SIGNET_TRY(CheckNoteText(text));
  if (signers.empty()) return InvalidArgument("a note needs at least one signer");
  Note note;
  note.text = std::string(text);
  for (size_t i = 0; i < signers.size(); ++i) {
    const NoteSigner& signer = signers[i];
    const VerifierKey& key = signer.key;
    if (key.type != SignatureType::kEd25519) {
      return InvalidArgument("note signer " + Quote(key.name) + " must be an Ed25519 key");
    }
    SIGNET_TRY(CheckVerifierKey(key, /*parse_spki=*/true));
    if (!signer.sign) return InvalidArgument("note signer " + Quote(key.name) + " has no callback");
    for (size_t j = 0; j < i; ++j) {
      if (signers[j].key.name == key.name && signers[j].key.key_id == key.key_id) {
        return InvalidArgument("note signer " + DescribeKey(key.name, key.key_id) +
                               " is given twice");
      }
    }
    auto signature = signer.sign(AsBytes(note.text));
    if (!signature.ok()) {
      return signature.error().WithContext("signing note with " +
                                           DescribeKey(key.name, key.key_id));
    }
    if (signature->size() != internal::kEd25519SignatureSize ||
        !internal::VerifyEd25519(key.public_key, AsBytes(note.text), *signature)) {
      return InternalError("the signer for " + DescribeKey(key.name, key.key_id) +
                           " returned a signature that does not verify with that public key "
                           "(wrong HSM key or mechanism?)");
    }
    note.signatures.push_back(NoteSignature{key.name, key.key_id, std::move(signature).value()});
  }
  return FormatNote(note);
}

// --- Checkpoints --------------------------------------------------------------------------------

Result<Checkpoint> ParseCheckpoint(std::string_view text) {
  if (text.size() > kMaxNoteSize) {
    return InvalidArgument("checkpoint is longer than " + Str(kMaxNoteSize) + " bytes");
  }
  SIGNET_TRY(CheckText(text, "checkpoint"));
  if (text.empty() || text.back() != '\n') {
    return InvalidArgument("checkpoint text must end in a newline");
  }
  std::vector<std::string_view> lines;
  for (std::string_view rest = text; !rest.empty();) {
    if (lines.size() == 3 + kMaxCheckpointExtensions) {
      return InvalidArgument("checkpoint has more than " + Str(kMaxCheckpointExtensions) +
                             " extension lines");
    }
    const size_t end = rest.find('\n');
    lines.push_back(rest.substr(0, end));
    rest.remove_prefix(end + 1);
  }
  if (lines.size() < 3) {
    return InvalidArgument("checkpoint needs an origin, a tree size and a root hash line, got " +
                           Str(lines.size()) + " lines");
  }
  Checkpoint checkpoint;
  if (lines[0].empty()) return InvalidArgument("checkpoint origin (line 1) is empty");
  checkpoint.origin = std::string(lines[0]);
  SIGNET_ASSIGN_OR_RETURN(uint64_t size, ParseTreeSize(lines[1]));
  checkpoint.size = TreeSize(size);
  auto root_bytes = Base64Decode(lines[2]);
  if (!root_bytes.ok()) return root_bytes.error().WithContext("checkpoint root hash (line 3)");
  SIGNET_ASSIGN_OR_RETURN(checkpoint.root, ToSha256Digest(*root_bytes, "checkpoint root hash"));
  if (size == 0 && checkpoint.root != EmptyRoot()) {
    return InvalidArgument("checkpoint of size 0 must carry the empty-tree root SHA-256(\"\")");
  }
  for (size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      return InvalidArgument("checkpoint extension line " + Str(i + 1) + " is empty");
    }
    checkpoint.extensions.emplace_back(lines[i]);
  }
  return checkpoint;
}

Result<std::string> FormatCheckpoint(const Checkpoint& checkpoint) {
  std::string text = checkpoint.origin + "\n" + Str(checkpoint.size.value()) + "\n" +
                     Base64Encode(checkpoint.root) + "\n";
  for (const std::string& line : checkpoint.extensions) text += line + "\n";
  auto parsed = ParseCheckpoint(text);
  if (!parsed.ok()) return parsed.error().WithContext("cannot format checkpoint");
  if (*parsed != checkpoint) {
    return InvalidArgument("cannot format checkpoint: origin or an extension contains a newline");
  }
  return text;
}

Result<VerifiedCheckpoint> OpenCheckpoint(std::string_view note, std::string_view expected_origin,
                                          std::span<const VerifierKey> trusted_keys) {
  SIGNET_ASSIGN_OR_RETURN(VerifiedNote verified, OpenNote(note, trusted_keys));
  SIGNET_ASSIGN_OR_RETURN(Checkpoint checkpoint, ParseCheckpoint(verified.text));
  if (checkpoint.origin != expected_origin) {
    return InvalidArgument("checkpoint is for origin " + Quote(checkpoint.origin) + ", expected " +
                           Quote(expected_origin));
  }
  return VerifiedCheckpoint{std::move(checkpoint), std::move(verified)};
}

Result<std::string> SignCheckpoint(const Checkpoint& checkpoint,
                                   std::span<const NoteSigner> signers) {
  SIGNET_ASSIGN_OR_RETURN(std::string text, FormatCheckpoint(checkpoint));
  return SignNote(text, signers);
}

}  // namespace signet::audit
