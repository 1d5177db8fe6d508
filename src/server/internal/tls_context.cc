// BuildTlsContext and VerifiedPeerCertificateSha256 (internal/tls_context.h).
//
// The policy lives here and nowhere else: protocol bounds, suites, groups, options. Files are read
// through bounded reads so a wrong path (a log file, /dev/zero) cannot exhaust memory, and the key
// file's permissions are checked on the opened descriptor, not the path, so a file swapped between
// check and read is still the one checked.

#include "server/internal/tls_context.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "common/bytes.h"
#include "common/encoding.h"
#include "common/fs.h"

namespace signet::server::internal {
namespace {

namespace ssl = boost::asio::ssl;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string DrainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Error TlsError(ErrorCode code, const std::string& message) {
  std::string details = DrainErrors();
  return Error(code, details.empty() ? message : message + ": " + details);
}

// Never prompt on a terminal for a passphrase: encrypted keys are refused.
int NoPassword(char*, int, int, void*) { return -1; }

Error ErrnoError(const std::string& what, const std::string& path, int err) {
  std::string message = what + " " + path + ": " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) return NotFound(message);
  if (err == EACCES || err == EPERM) return PermissionDenied(message);
  return Unavailable(message);
}

// Reads the private key file after checking, on the open descriptor, that it is a regular file
// no one but its owner can read or write.
Result<SecretBytes> ReadPrivateKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return ErrnoError("cannot open TLS private key file", path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoError("cannot stat TLS private key file", path, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return PermissionDenied("TLS private key file " + path + " is accessible by others (mode " +
                            mode + "); run: chmod 600 " + path);
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return PermissionDenied("TLS private key file " + path +
                            " belongs to another user; it must be owned by this user or root");
  }
  SecretBytes content;
  Bytes buffer(kMaxKeyFileSize + 1);
  size_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buffer.data() + total, buffer.size() - total);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      SecureWipe(buffer.data(), buffer.size());
      return ErrnoError("cannot read TLS private key file", path, err);
    }
    if (n == 0) break;
    total += static_cast<size_t>(n);
    if (total > kMaxKeyFileSize) {
      SecureWipe(buffer.data(), buffer.size());
      return InvalidArgument("TLS private key file " + path + " is larger than " +
                             std::to_string(kMaxKeyFileSize) + " bytes");
    }
  }
  content = SecretBytes(ByteView(buffer.data(), total));
  SecureWipe(buffer.data(), buffer.size());
  return content;
}

// All CERTIFICATE blocks of a PEM file, in order; InvalidArgument if there are none.
Result<std::vector<X509Ptr>> ReadCertificates(const std::string& path, const char* what) {
  auto pem = fs::ReadFile(path, kMaxPemFileSize);
  if (!pem.ok()) return pem.error().WithContext(std::string("cannot read ") + what);
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  if (!bio) return TlsError(ErrorCode::kInternal, "out of memory");
  std::vector<X509Ptr> certs;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();  // normal end of input
  }
  std::string errors = DrainErrors();
  if (!errors.empty() || certs.empty()) {
    return InvalidArgument(std::string(what) + " " + path +
                           (certs.empty() ? " holds no PEM CERTIFICATE" : " is malformed") +
                           (errors.empty() ? "" : ": " + errors));
  }
  return certs;
}

Status ApplyPolicy(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return TlsError(ErrorCode::kInternal, "cannot restrict TLS versions");
  }
  // SSL_OP_NO_RENEGOTIATION refuses TLS 1.2 renegotiation in both directions (OpenSSL 3 also
  // refuses client-initiated renegotiation unless SSL_OP_ALLOW_CLIENT_RENEGOTIATION is set).
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12CipherList) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13CipherSuites) != 1) {
    return TlsError(ErrorCode::kInternal, "cannot set the TLS cipher suites");
  }
  if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
    return TlsError(ErrorCode::kInternal, "cannot set the TLS key exchange groups");
  }
  // Needed for session resumption when client certificates are verified.
  static constexpr unsigned char kSessionContext[] = "signet";
  if (SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1) != 1) {
    return TlsError(ErrorCode::kInternal, "cannot set the TLS session context");
  }
  return OkStatus();
}

Status LoadServerIdentity(SSL_CTX* ctx, const TlsOptions& options) {
  SIGNET_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                          ReadCertificates(options.certificate_chain_file, "TLS certificate file"));
  if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) {
    return TlsError(ErrorCode::kInvalidArgument,
                    "cannot use the certificate in " + options.certificate_chain_file);
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
      return TlsError(ErrorCode::kInvalidArgument, "cannot use chain certificate " +
                                                       std::to_string(i + 1) + " in " +
                                                       options.certificate_chain_file);
    }
  }
  SIGNET_ASSIGN_OR_RETURN(SecretBytes key_pem, ReadPrivateKeyFile(options.private_key_file));
  BioPtr bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  if (!bio) return TlsError(ErrorCode::kInternal, "out of memory");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (!key) {
    return TlsError(ErrorCode::kInvalidArgument, "TLS private key file " +
                                                     options.private_key_file +
                                                     " holds no unencrypted PEM private key");
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return TlsError(ErrorCode::kInvalidArgument, "TLS private key " + options.private_key_file +
                                                     " does not match the certificate in " +
                                                     options.certificate_chain_file);
  }
  return OkStatus();
}

Status LoadClientCas(SSL_CTX* ctx, const TlsOptions& options) {
  SIGNET_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                          ReadCertificates(options.client_ca_file, "client CA file"));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const X509Ptr& ca : cas) {
    if (X509_STORE_add_cert(store, ca.get()) != 1 || SSL_CTX_add_client_CA(ctx, ca.get()) != 1) {
      return TlsError(ErrorCode::kInvalidArgument,
                      "cannot use a certificate of " + options.client_ca_file);
    }
  }
  int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
  if (options.client_auth == ClientAuth::kRequired) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);
  SSL_CTX_set_verify_depth(ctx, 4);
  // Client certificates must be fit for TLS client authentication (EKU clientAuth if present).
  if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
    return TlsError(ErrorCode::kInternal, "cannot set the client certificate purpose");
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<ssl::context>> BuildTlsContext(const TlsOptions& options) {
  if (options.certificate_chain_file.empty() || options.private_key_file.empty()) {
    return InvalidArgument("the TLS certificate and private key files must be set");
  }
  if ((options.client_auth == ClientAuth::kNone) != options.client_ca_file.empty()) {
    return InvalidArgument(
        "mutual TLS needs both a client CA file and client_auth optional or required");
  }
  ERR_clear_error();
  std::unique_ptr<ssl::context> context;
  try {
    context = std::make_unique<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot create the TLS context: ") + e.what());
  }
  SSL_CTX* ctx = context->native_handle();
  SIGNET_TRY(ApplyPolicy(ctx));
  SIGNET_TRY(LoadServerIdentity(ctx, options));
  if (options.client_auth != ClientAuth::kNone) SIGNET_TRY(LoadClientCas(ctx, options));
  return context;
}

std::optional<std::string> VerifiedPeerCertificateSha256(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(peer, EVP_sha256(), digest, &length) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return HexEncode(ByteView(digest, length));
}

}  // namespace signet::server::internal
