// ParseChainForKey (pki.h): accepts the certificate chain a CA issued for a key.
//
// The PEM text is untrusted (an administrator pastes what a CA sent). It is read by a strict
// line scanner rather than PEM_read_bio_X509, which skips arbitrary text between blocks and
// would let a mangled upload through. Every index is compared with the text's size before use;
// the size and the number of certificates are capped before any DER is decoded.

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "pki/internal/openssl_ptr.h"
#include "pki/internal/openssl_util.h"
#include "pki/pki.h"

namespace signet::pki {
namespace {

using internal::OpenSslError;
using internal::QuoteForMessage;
using internal::UniquePtr;

constexpr std::string_view kBeginPrefix = "-----BEGIN ";
constexpr std::string_view kEndPrefix = "-----END ";
constexpr std::string_view kDashes = "-----";
constexpr std::string_view kCertificateLabel = "CERTIFICATE";
// Longest name quoted in an error message.
constexpr size_t kMaxNameInMessage = 200;

std::string_view Trim(std::string_view text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && (text[begin] == ' ' || text[begin] == '\t')) ++begin;
  while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r')) {
    --end;
  }
  return text.substr(begin, end - begin);
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.substr(0, prefix.size()) == prefix;
}
bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// If `line` is an encapsulation boundary "<prefix>LABEL-----" (RFC 7468 §2), stores LABEL in
// `label` and returns true.
bool BoundaryLabel(std::string_view line, std::string_view prefix, std::string_view* label) {
  if (!StartsWith(line, prefix) || line.size() < prefix.size() + kDashes.size() ||
      !EndsWith(line, kDashes)) {
    return false;
  }
  *label = line.substr(prefix.size(), line.size() - prefix.size() - kDashes.size());
  return true;
}

std::string CertificateNumber(size_t number) { return "certificate " + std::to_string(number); }

// Splits RFC 7468 text into the DER of its CERTIFICATE blocks. Only whitespace may surround the
// blocks; inside a block only base64 and whitespace may appear (RFC 7468 §3 "lax" reading, which
// accepts any line width and CRLF).
Result<std::vector<Bytes>> SplitPem(std::string_view text) {
  std::vector<Bytes> blocks;
  bool inside = false;
  std::string base64;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t newline = text.find('\n', pos);
    if (newline == std::string_view::npos) newline = text.size();
    const std::string_view line = Trim(text.substr(pos, newline - pos));
    pos = newline + 1;  // may pass text.size(), which ends the loop
    ++line_number;
    const size_t number = blocks.size() + 1;  // of the block being read or expected next
    std::string_view label;

    if (!inside) {
      if (line.empty()) continue;
      if (!BoundaryLabel(line, kBeginPrefix, &label)) {
        if (blocks.empty()) {
          return InvalidArgument("the text is not a PEM certificate chain: line " +
                                 std::to_string(line_number) +
                                 " should be '-----BEGIN CERTIFICATE-----'");
        }
        return InvalidArgument("unexpected text at line " + std::to_string(line_number) +
                               ", after " + CertificateNumber(blocks.size()) +
                               ": only PEM CERTIFICATE blocks, separated by nothing but blank "
                               "lines, are accepted");
      }
      if (label != kCertificateLabel) {
        return InvalidArgument("PEM block " + std::to_string(number) + " (line " +
                               std::to_string(line_number) + ") is a '" +
                               QuoteForMessage(label, 40) +
                               "', not a CERTIFICATE; the chain must hold certificates only");
      }
      if (blocks.size() >= kMaxChainCertificates) {
        return InvalidArgument("the chain holds more than " +
                               std::to_string(kMaxChainCertificates) +
                               " certificates; send the leaf and its issuing CAs only");
      }
      inside = true;
      base64.clear();
      continue;
    }

    if (BoundaryLabel(line, kEndPrefix, &label)) {
      if (label != kCertificateLabel) {
        return InvalidArgument(CertificateNumber(number) + " ends with '-----END " +
                               QuoteForMessage(label, 40) +
                               "-----' instead of '-----END CERTIFICATE-----'");
      }
      if (base64.empty()) return InvalidArgument(CertificateNumber(number) + " is empty");
      Result<Bytes> der = Base64Decode(base64);
      if (!der.ok()) {
        return InvalidArgument(CertificateNumber(number) + " is not valid base64 (" +
                               der.error().message() + "); was it cut or edited?");
      }
      blocks.push_back(std::move(der).value());
      inside = false;
      continue;
    }
    if (StartsWith(line, kDashes)) {
      return InvalidArgument(CertificateNumber(number) +
                             " has no '-----END CERTIFICATE-----' "
                             "line before line " +
                             std::to_string(line_number));
    }
    for (char c : line) {
      if (c != ' ' && c != '\t') base64 += c;
    }
  }
  if (inside) {
    return InvalidArgument(CertificateNumber(blocks.size() + 1) +
                           " has no '-----END CERTIFICATE-----' line; the text was cut short");
  }
  if (blocks.empty()) {
    return InvalidArgument(
        "no certificate found: expected one or more '-----BEGIN "
        "CERTIFICATE-----' blocks, leaf first");
  }
  return blocks;
}

Result<UniquePtr<X509>> DecodeCertificate(const Bytes& der, size_t number) {
  const unsigned char* cursor = der.data();
  UniquePtr<X509> certificate(d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
  if (certificate == nullptr) {
    return OpenSslError(ErrorCode::kInvalidArgument,
                        CertificateNumber(number) + " is not a DER X.509 certificate");
  }
  if (cursor != der.data() + der.size()) {
    return InvalidArgument(CertificateNumber(number) + " has " +
                           std::to_string(der.data() + der.size() - cursor) +
                           " bytes after the certificate inside its PEM block");
  }
  // Computes the cached extension flags; malformed or duplicated extensions set EXFLAG_INVALID.
  if ((X509_get_extension_flags(certificate.get()) & EXFLAG_INVALID) != 0) {
    return OpenSslError(ErrorCode::kInvalidArgument,
                        CertificateNumber(number) + " has malformed or repeated extensions");
  }
  return certificate;
}

// Cuts a name for a message without splitting a UTF-8 character.
std::string ShortName(const X509_NAME* name) {
  std::string text = internal::NameToString(name);
  if (text.size() <= kMaxNameInMessage) return text;
  size_t cut = kMaxNameInMessage;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0u) == 0x80u) --cut;
  return text.substr(0, cut) + "...";
}

// "certificate 2 ('CN=Example CA,O=Example,C=GB')"
std::string Describe(const std::vector<UniquePtr<X509>>& chain, size_t index) {
  return CertificateNumber(index + 1) + " ('" +
         ShortName(X509_get_subject_name(chain[index].get())) + "')";
}

Result<Bytes> SpkiOf(X509* certificate) {
  return internal::EncodeDer(i2d_X509_PUBKEY, X509_get_X509_PUBKEY(certificate),
                             "a certificate's public key");
}

bool SameBytes(ByteView a, ByteView b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// RFC 5280 §6.1.3 (a)(1), (a)(4) and §6.1.4 (k)-(n) for the link chain[index] <- chain[index+1].
Status CheckIssued(const std::vector<UniquePtr<X509>>& chain, size_t index) {
  X509* subject = chain[index].get();
  X509* issuer = chain[index + 1].get();
  const std::string link =
      Describe(chain, index + 1) + " did not issue " + Describe(chain, index) + ": ";

  if (X509_NAME_cmp(X509_get_issuer_name(subject), X509_get_subject_name(issuer)) != 0) {
    internal::DrainOpenSslErrors();
    return InvalidArgument(link + "the issuer of " + CertificateNumber(index + 1) + " is '" +
                           ShortName(X509_get_issuer_name(subject)) +
                           "'; list each certificate's issuer right after it");
  }
  // Equal as RFC 5280 §7.1 compares names, but CSBR 7.1.4.1 wants the very bytes, and verifiers
  // that compare bytes (Windows among them) would not link the two.
  SIGNET_ASSIGN_OR_RETURN(
      const Bytes issuer_field,
      internal::EncodeDer(i2d_X509_NAME, X509_get_issuer_name(subject), "an issuer name"));
  SIGNET_ASSIGN_OR_RETURN(
      const Bytes issuer_subject,
      internal::EncodeDer(i2d_X509_NAME, X509_get_subject_name(issuer), "a subject name"));
  if (!SameBytes(issuer_field, issuer_subject)) {
    return InvalidArgument(link + "the issuer name in " + CertificateNumber(index + 1) +
                           " matches the subject of " + CertificateNumber(index + 2) +
                           " only when compared loosely (case, spaces or string types differ); "
                           "it must be the same bytes (CSBR 7.1.4.1)");
  }
  EVP_PKEY* issuer_key = X509_get0_pubkey(issuer);
  if (issuer_key == nullptr) {
    return OpenSslError(ErrorCode::kInvalidArgument,
                        Describe(chain, index + 1) + " has a public key that cannot be used");
  }
  const int key_bits = EVP_PKEY_get_security_bits(issuer_key);
  if (key_bits < kMinChainSecurityBits) {
    internal::DrainOpenSslErrors();
    return InvalidArgument(link + "the public key of " + CertificateNumber(index + 2) + " has " +
                           (key_bits > 0 ? std::to_string(key_bits) : std::string("unknown")) +
                           " bits of security; at least " + std::to_string(kMinChainSecurityBits) +
                           " are needed (RSA of 2048 bits or more, or an elliptic curve key)");
  }
  int digest_nid = NID_undef;
  int signature_bits = 0;
  uint32_t signature_flags = 0;
  if (X509_get_signature_info(subject, &digest_nid, nullptr, &signature_bits, &signature_flags) !=
          1 ||
      (signature_flags & X509_SIG_INFO_VALID) == 0) {
    internal::DrainOpenSslErrors();
    return InvalidArgument(link + "the signature algorithm of " + CertificateNumber(index + 1) +
                           " is not one signet can check");
  }
  if (signature_bits < kMinChainSecurityBits) {
    const char* digest = digest_nid == NID_undef ? nullptr : OBJ_nid2sn(digest_nid);
    return InvalidArgument(CertificateNumber(index + 1) + " is signed with " +
                           (digest != nullptr ? std::string(digest) : std::string("a digest")) +
                           ", which is too weak (" + std::to_string(signature_bits) +
                           " bits of security, at least " + std::to_string(kMinChainSecurityBits) +
                           " are needed); ask the CA for a certificate signed with SHA-256 or "
                           "stronger");
  }
  if (X509_verify(subject, issuer_key) != 1) {
    return OpenSslError(ErrorCode::kInvalidArgument,
                        link + "the signature of " + CertificateNumber(index + 1) +
                            " does not verify with the public key of " +
                            CertificateNumber(index + 2) +
                            " (same name, different key: is it a different CA, or an old or "
                            "new generation of it?)");
  }

  const uint32_t flags = X509_get_extension_flags(issuer);
  if ((flags & EXFLAG_BCONS) == 0 || (flags & EXFLAG_CA) == 0) {
    return InvalidArgument(link + CertificateNumber(index + 2) +
                           " is not a CA certificate (its basicConstraints does not say cA TRUE)");
  }
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(issuer) & KU_KEY_CERT_SIGN) == 0) {
    return InvalidArgument(link + "the keyUsage of " + CertificateNumber(index + 2) +
                           " does not allow keyCertSign");
  }
  // pathLenConstraint counts the CA certificates between this CA and the leaf, leaving out
  // self-issued ones (RFC 5280 §6.1.4 (l), (m)).
  const long path_length = X509_get_pathlen(issuer);
  if (path_length >= 0) {
    long below = 0;
    for (size_t k = 1; k <= index; ++k) {
      if ((X509_get_extension_flags(chain[k].get()) & EXFLAG_SI) == 0) ++below;
    }
    if (below > path_length) {
      return InvalidArgument(Describe(chain, index + 1) +
                             " is too deep in the chain: " + CertificateNumber(index + 2) +
                             " allows " + std::to_string(path_length) +
                             " intermediate CA certificate(s) below it (pathLenConstraint)");
    }
  }
  return OkStatus();
}

}  // namespace

Result<CertificateChain> ParseChainForKey(std::string_view pem, ByteView key_spki_der) {
  ERR_clear_error();
  if (pem.size() > kMaxChainPemSize) {
    return InvalidArgument("the certificate chain is " + std::to_string(pem.size()) +
                           " bytes; at most " + std::to_string(kMaxChainPemSize) + " are accepted");
  }
  SIGNET_ASSIGN_OR_RETURN(UniquePtr<EVP_PKEY> key,
                          internal::ParseSpki(key_spki_der, "the key's public key"));
  SIGNET_ASSIGN_OR_RETURN(std::vector<Bytes> ders, SplitPem(pem));

  for (size_t i = 1; i < ders.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (ders[i] == ders[j]) {
        return InvalidArgument(CertificateNumber(i + 1) + " repeats " + CertificateNumber(j + 1) +
                               "; list each certificate once, leaf first");
      }
    }
  }
  std::vector<UniquePtr<X509>> chain;
  chain.reserve(ders.size());
  for (size_t i = 0; i < ders.size(); ++i) {
    SIGNET_ASSIGN_OR_RETURN(UniquePtr<X509> certificate, DecodeCertificate(ders[i], i + 1));
    chain.push_back(std::move(certificate));
  }

  // The leaf must certify exactly this key (RFC 5280 §4.1.2.7).
  SIGNET_ASSIGN_OR_RETURN(const Bytes leaf_spki, SpkiOf(chain[0].get()));
  if (!SameBytes(leaf_spki, key_spki_der)) {
    for (size_t i = 1; i < chain.size(); ++i) {
      SIGNET_ASSIGN_OR_RETURN(const Bytes spki, SpkiOf(chain[i].get()));
      if (SameBytes(spki, key_spki_der)) {
        return InvalidArgument(Describe(chain, 0) + " is not for this key, but " +
                               CertificateNumber(i + 1) +
                               " is: list the leaf certificate first, then its issuers in order");
      }
    }
    return InvalidArgument("the certificate is not for key SPKI SHA-256 " +
                           internal::Sha256Hex(key_spki_der) + ": its public key differs (" +
                           Describe(chain, 0) + " certifies SPKI SHA-256 " +
                           internal::Sha256Hex(leaf_spki) + ")");
  }

  for (size_t i = 1; i < chain.size(); ++i) {
    SIGNET_ASSIGN_OR_RETURN(const Bytes spki, SpkiOf(chain[i].get()));
    if (SameBytes(spki, key_spki_der)) {
      return InvalidArgument(Describe(chain, i) +
                             " certifies this key too, as an issuer: a signing key must not be a "
                             "CA's key (whoever may sign with it could issue certificates)");
    }
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    // RFC 5280 §4.2: a relying party refuses a certificate with a critical extension it does not
    // understand, so a chain holding one would be refused wherever it is used.
    if ((X509_get_extension_flags(chain[i].get()) & EXFLAG_CRITICAL) != 0) {
      return InvalidArgument(Describe(chain, i) +
                             " has a critical extension that signet (OpenSSL) does not know; "
                             "verifiers refuse such a certificate");
    }
  }
  for (size_t i = 0; i + 1 < chain.size(); ++i) SIGNET_TRY(CheckIssued(chain, i));

  X509* leaf = chain[0].get();
  CertificateChain result;
  result.leaf_subject = internal::NameToString(X509_get_subject_name(leaf));
  result.leaf_issuer = internal::NameToString(X509_get_issuer_name(leaf));
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf);
  const auto serial_length = static_cast<size_t>(ASN1_STRING_length(serial));
  result.leaf_serial_hex =
      serial_length == 0 ? "00" : HexEncode(ByteView(ASN1_STRING_get0_data(serial), serial_length));
  if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER) result.leaf_serial_hex.insert(0, "-");
  auto not_before = internal::AsnTimeToTimePoint(X509_get0_notBefore(leaf));
  auto not_after = internal::AsnTimeToTimePoint(X509_get0_notAfter(leaf));
  if (!not_before.ok()) return not_before.error().WithContext(CertificateNumber(1) + " notBefore");
  if (!not_after.ok()) return not_after.error().WithContext(CertificateNumber(1) + " notAfter");
  result.not_before = *not_before;
  result.not_after = *not_after;
  auto not_before_text = internal::AsnTimeToGeneralizedTime(X509_get0_notBefore(leaf));
  auto not_after_text = internal::AsnTimeToGeneralizedTime(X509_get0_notAfter(leaf));
  if (!not_before_text.ok()) {
    return not_before_text.error().WithContext(CertificateNumber(1) + " notBefore");
  }
  if (!not_after_text.ok()) {
    return not_after_text.error().WithContext(CertificateNumber(1) + " notAfter");
  }
  result.not_before_text = *std::move(not_before_text);
  result.not_after_text = *std::move(not_after_text);
  result.leaf_is_ca = (X509_get_extension_flags(leaf) & EXFLAG_CA) != 0;
  int critical = 0;
  auto* usages = static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(leaf, NID_ext_key_usage, &critical, nullptr));
  if (usages != nullptr) {
    std::vector<std::string> oids;
    for (int i = 0; i < sk_ASN1_OBJECT_num(usages); ++i) {
      char text[128];
      const int n = OBJ_obj2txt(text, sizeof text, sk_ASN1_OBJECT_value(usages, i), 1);
      if (n > 0 && static_cast<size_t>(n) < sizeof text)
        oids.emplace_back(text, static_cast<size_t>(n));
    }
    sk_ASN1_OBJECT_pop_free(usages, ASN1_OBJECT_free);
    result.leaf_extended_key_usage = std::move(oids);
  } else if (critical != -1) {
    internal::DrainOpenSslErrors();
    return InvalidArgument(CertificateNumber(1) + " has an extendedKeyUsage that does not parse");
  }
  if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) != 0) {
    result.leaf_key_usage = X509_get_key_usage(leaf);
    const int at = X509_get_ext_by_NID(leaf, NID_key_usage, -1);
    X509_EXTENSION* extension = at < 0 ? nullptr : X509_get_ext(leaf, at);
    result.leaf_key_usage_critical = extension != nullptr && X509_EXTENSION_get_critical(extension);
  }
  for (const Bytes& der : ders) result.pem += internal::PemEncode(kCertificateLabel, der);
  result.certificates_der = std::move(ders);
  return result;
}

}  // namespace signet::pki
