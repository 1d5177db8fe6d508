// The TLS side of the server: builds the OpenSSL server context with signet's fixed policy
// (server.h, ServerOptions) and reads the verified client certificate of a connection. Private to
// server/. Thread-safe: BuildTlsContext is pure; the context it returns is read-only afterwards and
// shared by all connections (OpenSSL allows that).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "server/server.h"

namespace signet::server::internal {

// TLS 1.2 suites: ECDHE key exchange with an AEAD only (no CBC, no RSA key transport, no SHA-1).
inline constexpr const char* kTls12CipherList =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// TLS 1.3 suites: all three are AEADs (RFC 8446 §B.4).
inline constexpr const char* kTls13CipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// Largest certificate / CA file read.
inline constexpr size_t kMaxPemFileSize = 1024 * 1024;
// Largest private key file read.
inline constexpr size_t kMaxKeyFileSize = 64 * 1024;

// Builds the server context from `options` (see TlsOptions for the files and their checks).
Result<std::unique_ptr<boost::asio::ssl::context>> BuildTlsContext(const TlsOptions& options);

// Lower-case hex SHA-256 of the DER of the peer's certificate if the peer presented one and it
// verified; nullopt otherwise.
std::optional<std::string> VerifiedPeerCertificateSha256(SSL* ssl);

}  // namespace signet::server::internal
