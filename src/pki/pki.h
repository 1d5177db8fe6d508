// pki: the X.509 side of signet that sits on top of OpenSSL (see DESIGN.md §2). This header is the
// component's one public interface:
//
//  - ParseSubject / DistinguishedName: the subject a key's certificate request carries, parsed
//    from the OpenSSL-style "/CN=.../O=.../C=GB" text and checked against a CSBR-oriented set of
//    attribute types (CSBR §7.1.4.2).
//  - CreateCsrPem: a PKCS#10 CertificationRequest (RFC 2986) for a key that lives in an HSM. pki
//    never sees the private key and does not depend on hsm/: it builds the request, hashes it and
//    asks a DigestSigner callback for the signature, then checks the result with OpenSSL.
//  - ParseChainForKey: checks a certificate chain a CA returned for a key before signet stores it.
//
// Threads: every function here is a pure function of its arguments (the signer callback aside) and
// may be called from any number of threads at once. Nothing is cached or shared between calls.
//
// Errors: InvalidArgument for bad input (the message says which part is bad and how), Internal
// when OpenSSL or the signer misbehaves. No function throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"

namespace signet::pki {

// Signs `digest` (the output of `hash` over the data to be signed) with the private key of the
// certificate request's subject, and returns the signature in the form X.509 carries it: for
// kRsaPkcs1v15 the RSASSA-PKCS1-v1_5 signature bytes (RFC 8017 §8.2, the DigestInfo is built by the
// signer), for kEcdsa a DER Ecdsa-Sig-Value (RFC 3279 §2.2.3). Called at most once per
// CreateCsrPem, on the calling thread. An error it returns is passed back to the caller of
// CreateCsrPem with its code unchanged.
using DigestSigner =
    std::function<Result<Bytes>(SignatureScheme scheme, HashAlgorithm hash, ByteView digest)>;

// --- Subject names ---------------------------------------------------------------------------

// Limits on subject text; longer input is refused before it is parsed.
inline constexpr size_t kMaxSubjectTextSize = 4096;
inline constexpr size_t kMaxSubjectAttributes = 32;

// An X.500 distinguished name as an ordered list of (type, value) pairs, one attribute per RDN
// (multi-valued RDNs are not supported), in the order they are encoded: the first pair is the
// first RDN of the DER Name (RFC 5280 §4.1.2.4). Types are the canonical short names accepted by
// ParseSubject ("CN", "O", "jurisdictionC", ...); values are UTF-8.
struct DistinguishedName {
  std::vector<std::pair<std::string, std::string>> attributes;

  // The OpenSSL-style text ParseSubject reads, e.g. "/CN=Example Code Signer/O=Example Ltd/C=GB",
  // with '/' and '\' inside values escaped by a backslash, so ParseSubject(dn.ToString()) == dn.
  std::string ToString() const;

  bool operator==(const DistinguishedName&) const = default;
};

// Parses "/TYPE=value/TYPE=value..." as `openssl req -subj` does: each attribute starts with '/',
// the type ends at the first '=', the value runs to the next '/' that is not escaped; a backslash
// makes the next character literal ("/O=A\/B Ltd" has O "A/B Ltd"). Type names are matched
// without regard to case and stored in canonical form.
//
// Accepted types (short name / long name; OID), with the limits of RFC 5280 Appendix A and X.520:
//   CN / commonName (2.5.4.3), at most 64 characters, required, once;
//   O / organizationName (2.5.4.10), 64;    OU / organizationalUnitName (2.5.4.11), 64, repeatable;
//   C / countryName (2.5.4.6), two upper-case letters (ISO 3166-1 alpha-2 or "XX");
//   ST / stateOrProvinceName (2.5.4.8), 128; L / localityName (2.5.4.7), 128;
//   street / streetAddress (2.5.4.9), 128, repeatable; postalCode (2.5.4.17), 40;
//   serialNumber (2.5.4.5), 64, PrintableString characters only;
//   businessCategory (2.5.4.15): "Private Organization", "Government Entity", "Business Entity"
//     or "Non-Commercial Entity" (CSBR §7.1.4.2.3 for EV);
//   jurisdictionC / jurisdictionCountryName (1.3.6.1.4.1.311.60.2.1.3), two upper-case letters;
//   jurisdictionST / jurisdictionStateOrProvinceName (...60.2.1.2), 128;
//   jurisdictionL / jurisdictionLocalityName (...60.2.1.1), 128.
// Types other than OU and street may appear at most once.
//
// Fails with InvalidArgument, naming the attribute (1-based) and the problem, for: empty text or
// text over kMaxSubjectTextSize bytes; no leading '/'; a missing '='; an empty type or value; an
// unknown type (the message lists the accepted ones) or DC/domainComponent (prohibited by CSBR
// §7.1.4.2); a value that is not valid UTF-8, holds control characters, starts or ends with
// whitespace, is only "metadata" such as "." or "-" (CSBR §7.1.4.2), or is too long; a bad C;
// a repeated single-valued type; a missing CN; more than kMaxSubjectAttributes attributes.
Result<DistinguishedName> ParseSubject(std::string_view text);

// --- Certificate requests ---------------------------------------------------------------------

// Builds a PKCS#10 CertificationRequest (RFC 2986 §4) in PEM ("CERTIFICATE REQUEST", RFC 7468
// §7): version 0, `subject` (checked by the same rules as ParseSubject; strings as UTF8String,
// C and serialNumber as PrintableString), the public key `spki_der` (a DER SubjectPublicKeyInfo,
// RFC 5280 §4.1.2.7, carried byte for byte) and no attributes. The CertificationRequestInfo is
// hashed and signed through `sign`:
//   kRsa3072, kRsa4096 -> sha256WithRSAEncryption (RSASSA-PKCS1-v1_5, SHA-256; RFC 4055 §5);
//   kEcP256 -> ecdsa-with-SHA256; kEcP384 -> ecdsa-with-SHA384 (RFC 5758 §3.2).
// Before returning, the finished request is parsed back and its signature verified with the key
// in `spki_der`, so a signer that used another key (or returned garbage) cannot yield a CSR.
//
// Fails with:
//   InvalidArgument: `alg` is not a code-signing algorithm (Ed25519); `spki_der` is not a DER
//     SubjectPublicKeyInfo, or its key is not of type `alg` (wrong RSA size or curve); `subject`
//     breaks a ParseSubject rule; `sign` is empty;
//   the signer's own error, code unchanged, with context added;
//   Internal: the signer returned an empty or oversized signature, the signature does not verify
//     with `spki_der` (the HSM key is not the one whose public key was given), or OpenSSL failed.
Result<std::string> CreateCsrPem(ByteView spki_der, KeyAlgorithm alg,
                                 const DistinguishedName& subject, const DigestSigner& sign);

// --- Certificate chains -----------------------------------------------------------------------

// Limits on a chain; larger input is refused before any certificate is decoded.
inline constexpr size_t kMaxChainPemSize = 1024 * 1024;
inline constexpr size_t kMaxChainCertificates = 10;

// A certificate chain accepted for a key.
struct CertificateChain {
  std::vector<Bytes> certificates_der;  // leaf first, then its issuers in order; the exact DER
  std::string pem;                      // the same certificates as RFC 7468 PEM (64-column base64,
                                        // LF line ends, nothing between blocks), leaf first
  std::string leaf_subject;             // RFC 4514 form, e.g. "CN=Example Signer,O=Example,C=GB"
  std::string leaf_issuer;              // RFC 4514 form
  std::string leaf_serial_hex;          // lower-case hex of the serial's magnitude, no separators
                                        // ("-" in front if the serial is, wrongly, negative)
  TimePoint not_before;                 // validity of the leaf (RFC 5280 §4.1.2.5); a year
  TimePoint not_after;                  // beyond TimePoint's 1677..2262 is min() or max()
  std::string not_before_text;          // the same as GeneralizedTime, "YYYYMMDDHHMMSSZ", exact
  std::string not_after_text;           // for any year (99991231235959Z stays that)
  bool leaf_is_ca = false;              // basicConstraints cA TRUE
  // The leaf's extendedKeyUsage purposes as dotted OIDs, in order; nullopt without the extension.
  std::optional<std::vector<std::string>> leaf_extended_key_usage;
  // The leaf's keyUsage bits (kKeyUsage* below); nullopt without the extension.
  std::optional<uint32_t> leaf_key_usage;
  bool leaf_key_usage_critical = false;
};

// keyUsage bits (RFC 5280 §4.2.1.3) as leaf_key_usage reports them.
inline constexpr uint32_t kKeyUsageDigitalSignature = 0x80;
inline constexpr uint32_t kKeyUsageKeyCertSign = 0x04;
inline constexpr uint32_t kKeyUsageCrlSign = 0x02;

// The least security strength (bits, NIST SP 800-57) a chain's signatures and issuing keys may
// have: SHA-1 and MD5 signatures and RSA keys under 2048 bits are refused.
inline constexpr int kMinChainSecurityBits = 112;

// extendedKeyUsage purposes (RFC 5280 §4.2.1.12).
inline constexpr std::string_view kOidEkuCodeSigning = "1.3.6.1.5.5.7.3.3";
inline constexpr std::string_view kOidEkuServerAuth = "1.3.6.1.5.5.7.3.1";
inline constexpr std::string_view kOidEkuAny = "2.5.29.37.0";

// Parses PEM text holding one or more "CERTIFICATE" blocks (RFC 7468 §5): the leaf for the key
// first, then each issuer in order; a trailing self-signed root may be included. Only whitespace
// may appear outside the blocks (CRLF line ends and other base64 line widths are accepted and
// normalised); explanatory text, other PEM labels (a private key pasted by mistake) and RFC 1421
// headers are refused.
//
// Checks, all failing with InvalidArgument:
//   - the text is at most kMaxChainPemSize bytes and holds 1 to kMaxChainCertificates
//     certificates; each block is well-formed base64 of exactly one DER X.509 certificate and
//     nothing after it (the message names the certificate, counting from 1); no certificate
//     appears twice;
//   - the leaf's SubjectPublicKeyInfo equals `key_spki_der` byte for byte ("... is not for this
//     key: its public key differs"; if a later certificate holds the key, the message says to put
//     the leaf first). A wrong certificate is a wrong input, hence InvalidArgument rather than
//     FailedPrecondition;
//   - each certificate i is issued by certificate i+1 (RFC 5280 §6.1.3 (a)(1), (a)(4)): the issuer
//     name equals the next subject name (compared as RFC 5280 §7.1 describes, via X509_NAME_cmp)
//     and the signature verifies with the next certificate's public key ("certificate 2 ('CN=..')
//     did not issue certificate 1 ('CN=..'): ...");
//   - each link's signature has at least kMinChainSecurityBits of strength, its algorithm and the
//     issuer's key alike (no SHA-1 or MD5, no RSA-1024): relying parties refuse them;
//   - each issuing certificate is a CA (RFC 5280 §6.1.4 (k)): basicConstraints with cA TRUE; if it
//     has keyUsage, keyCertSign is set (§6.1.4 (n)); its pathLenConstraint, if any, allows the CA
//     certificates below it (§6.1.4 (l), (m)); and its extensions are well-formed.
// `key_spki_der` itself must be a DER SubjectPublicKeyInfo (else InvalidArgument).
//
// Not checked, because that is the relying party's job: trust anchors, validity at any time (the
// dates are only reported), revocation, policies, name constraints, extended key usage.
Result<CertificateChain> ParseChainForKey(std::string_view pem, ByteView key_spki_der);

// --- TLS identity for the embedded default ----------------------------------------------------

// How long a generated localhost TLS certificate is valid.
inline constexpr std::chrono::seconds kLocalhostTlsValidity{std::chrono::hours(24 * 365)};

// A TLS server certificate and its private key, both as PEM. The key is an ordinary file-held key
// (the issue allows it for TLS; signing keys never leave the HSM): the caller writes
// `private_key_pem` to an owner-only (0600) file, e.g. with fs::WriteFileAtomic.
struct TlsIdentity {
  std::string certificate_pem;  // "CERTIFICATE" (RFC 7468 §5), LF line ends
  SecretBytes private_key_pem;  // "PRIVATE KEY", unencrypted PKCS#8 (RFC 7468 §10)
  TimePoint not_after;
};

// Creates a fresh self-signed certificate for the development server of the embedded default:
// a new ECDSA P-256 key; X.509 v3 with a random positive 128-bit serial; subject and issuer
// "CN=localhost,O=signet development,OU=signet development TLS (not for production)";
// notBefore = `now` - 5 minutes (clock skew), notAfter = `now` + `validity`; extensions
// basicConstraints (critical) cA FALSE, keyUsage (critical) digitalSignature, extendedKeyUsage
// serverAuth (RFC 5280 §4.2.1.12), subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1 and a
// subjectKeyIdentifier; signed ecdsa-with-SHA256. The result verifies against itself
// (`openssl verify -CAfile cert.pem cert.pem`).
//
// Fails with InvalidArgument if `validity` is not positive or longer than 825 days, Internal if
// OpenSSL fails. Thread-safe.
Result<TlsIdentity> CreateLocalhostTlsIdentity(
    TimePoint now, std::chrono::seconds validity = kLocalhostTlsValidity);

// What a TLS certificate file says about its first certificate.
struct TlsCertificateSummary {
  TimePoint not_after;
  // Made by CreateLocalhostTlsIdentity: self-issued, with its development subject. Only such a
  // certificate may be replaced by a new one without the operator; one a CA issued may not.
  bool development = false;
};
// InvalidArgument if `text` holds no PEM certificate.
Result<TlsCertificateSummary> SummarizeTlsCertificate(std::string_view text);

// --- Digests (activations: SAD hashes; tests) -------------------------------------------------

// The `hash` digest of `data` (FIPS 180-4), DigestSize(hash) bytes. Internal if OpenSSL fails.
// Thread-safe.
Result<Bytes> ComputeDigest(HashAlgorithm hash, ByteView data);

}  // namespace signet::pki
