// Helpers shared by the pki/ sources for talking to OpenSSL: turning its thread-local error queue
// into signet Errors, DER encoding through i2d_* functions, PEM text, names and times. Private to
// pki/. All functions are thread-safe (OpenSSL's error queue is per thread).
#pragma once

#include <openssl/x509.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "pki/internal/openssl_ptr.h"

namespace signet::pki::internal {

// Empties this thread's OpenSSL error queue and returns its entries joined by "; " (empty if
// there were none). Called before returning any error that followed an OpenSSL failure, so stale
// entries never leak into a later, unrelated message.
std::string DrainOpenSslErrors();

// `message` + ": " + the drained OpenSSL errors (or just `message` if the queue was empty).
Error OpenSslError(ErrorCode code, std::string message);

// DER of `object` through an OpenSSL i2d function (int i2d(T*, unsigned char**)). Fails with
// Internal if OpenSSL cannot encode it.
template <typename T, typename I2d>
Result<Bytes> EncodeDer(I2d i2d, T* object, std::string_view what) {
  int length = i2d(object, nullptr);
  if (length <= 0) return OpenSslError(ErrorCode::kInternal, "cannot encode " + std::string(what));
  Bytes der(static_cast<size_t>(length));
  unsigned char* out = der.data();
  if (i2d(object, &out) != length) {
    return OpenSslError(ErrorCode::kInternal, "cannot encode " + std::string(what));
  }
  return der;
}

// RFC 7468 §2 text: "-----BEGIN <label>-----", base64 in lines of 64 characters, "-----END
// <label>-----", each line ending in LF.
std::string PemEncode(std::string_view label, ByteView der);

// The RFC 4514 string of `name` ("CN=Leaf,O=Example Ltd,C=GB": most specific attribute first),
// UTF-8 kept, control characters and RFC 4514 specials escaped. Empty on failure.
std::string NameToString(const X509_NAME* name);

// Converts an X.509 Time (UTCTime or GeneralizedTime, RFC 5280 §4.1.2.5) to a TimePoint. A
// TimePoint counts nanoseconds in 64 bits (years 1677 to 2262), so a time outside that range
// saturates to TimePoint::min() or TimePoint::max(): 99991231235959Z, the notAfter RFC 5280 gives
// certificates that do not expire, is max(), which every comparison with a real time gets right.
Result<TimePoint> AsnTimeToTimePoint(const ASN1_TIME* time);

// The same time as GeneralizedTime text, "YYYYMMDDHHMMSSZ" (four-digit year, whatever the
// encoding was), exact for every year X.509 can encode.
Result<std::string> AsnTimeToGeneralizedTime(const ASN1_TIME* time);

// Decodes a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) that must span all of `der`. Fails with
// InvalidArgument naming `what` otherwise.
Result<UniquePtr<EVP_PKEY>> ParseSpki(ByteView der, std::string_view what);

// Lower-case hex SHA-256 of `data`, for naming keys in messages.
std::string Sha256Hex(ByteView data);

// Makes untrusted text safe to quote in an error message: at most `max_chars` bytes, bytes
// outside printable ASCII shown as \xNN, and "..." appended when cut.
std::string QuoteForMessage(std::string_view text, size_t max_chars = 64);

// Converts a size to int for OpenSSL. Callers bound their inputs first (1 MiB for chains, 4 KiB for
// subjects), so a larger value is a broken invariant and aborts rather than being truncated.
inline int ToInt(size_t n) {
  if (n > static_cast<size_t>(INT_MAX)) std::abort();
  return static_cast<int>(n);
}

}  // namespace signet::pki::internal
