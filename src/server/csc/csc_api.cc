// CSC API v2 handlers: JSON in, service call, JSON out. See csc_api.h for the authentication
// model; the error table is CscErrorResponse below.
#include "server/csc/csc_api.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/text.h"
#include "pki/pki.h"
#include "server/internal/json_handler.h"

namespace signet::server::csc {
namespace {

using json = nlohmann::json;
using internal::AuthenticateBearer;
using internal::AuthorizationParam;
using internal::CheckPasswordChangeNotDue;
using internal::JsonResponse;
using internal::OptBool;
using internal::OptString;
using internal::ReqInt;
using internal::ReqString;

constexpr std::string_view kPrefix = "/csc/v2/";
constexpr std::string_view kSpecs = "2.0.0.2";

// ---- OIDs
// ----------------------------------------------------------------------------------------

constexpr std::string_view kOidSha256 = "2.16.840.1.101.3.4.2.1";
constexpr std::string_view kOidSha384 = "2.16.840.1.101.3.4.2.2";
constexpr std::string_view kOidSha512 = "2.16.840.1.101.3.4.2.3";
constexpr std::string_view kOidRsaEncryption = "1.2.840.113549.1.1.1";
constexpr std::string_view kOidRsaPss = "1.2.840.113549.1.1.10";
constexpr std::string_view kOidSha256WithRsa = "1.2.840.113549.1.1.11";
constexpr std::string_view kOidSha384WithRsa = "1.2.840.113549.1.1.12";
constexpr std::string_view kOidSha512WithRsa = "1.2.840.113549.1.1.13";
constexpr std::string_view kOidEcdsaSha256 = "1.2.840.10045.4.3.2";
constexpr std::string_view kOidEcdsaSha384 = "1.2.840.10045.4.3.3";
constexpr std::string_view kOidEcdsaSha512 = "1.2.840.10045.4.3.4";
constexpr std::string_view kOidEcPublicKey = "1.2.840.10045.2.1";
constexpr std::string_view kOidP256 = "1.2.840.10045.3.1.7";
constexpr std::string_view kOidP384 = "1.3.132.0.34";

std::optional<HashAlgorithm> HashFromOid(std::string_view oid) {
  if (oid == kOidSha256) return HashAlgorithm::kSha256;
  if (oid == kOidSha384) return HashAlgorithm::kSha384;
  if (oid == kOidSha512) return HashAlgorithm::kSha512;
  return std::nullopt;
}

// ---- errors
// --------------------------------------------------------------------------------------

// Where an error arose; Unauthenticated is read differently in each, and PermissionDenied in
// kSad (invalid_hash).
enum class Phase {
  kLogin,       // auth/login: the presented password/TOTP/certificate is wrong
  kBearer,      // Authorization: Bearer: the access token is wrong
  kSad,         // a use case that checks a SAD: the SAD is wrong or expired
  kActivation,  // credentials/authorize: the PIN or OTP in authData is wrong
};

// THE mapping of signet errors to CSC error bodies. HTTP status from HttpStatusFor but where
// noted; CSC error:
//   InvalidArgument, NotFound, AlreadyExists, FailedPrecondition -> invalid_request, always 400
//   PermissionDenied   -> access_denied; in a SAD phase, a hash the SAD does not authorize (not
//                         listed, or already signed: SigningService::IsUnauthorizedHash) is
//                         invalid_hash, CSC's code for "Hash is not authorized by the SAD"
//   Unauthenticated    -> login: invalid_authentication_data (AccountService does not say which
//                         factor was wrong, by design, so invalid_otp is never sent);
//                         bearer: invalid_token; both 401 with WWW-Authenticate (RFC 6750 §3);
//                         SAD (unknown, replaced, another account's or credential's, or
//                         expired): 400 invalid_request, as CSC v2's signHash table has it
//                         ("Invalid parameter SAD", "SAD expired": the expired case's
//                         description starts with that, SigningService::IsExpiredSad); a 401
//                         would make clients drop a valid access token;
//                         activation (authorize's PIN/OTP): 400 invalid_request, not 401, so
//                         that a client does not take its still valid access token for bad.
//   ResourceExhausted  -> a rate limit (SigningService::IsRateLimit): too_many_requests (429)
//   a server fault     -> internal::ServerFaultResponse: Unavailable and any other
//   (IsServerFault)       ResourceExhausted (disk, memory) temporarily_unavailable (503),
//                         DataLoss and Internal server_error (500); the description is generic
//                         (messages may name files, modules and hosts) and carries the request
//                         id, which the operational log's line for the fault also names; a fault
//                         after signHash consumed the hashes says they must be authorized again.
Response CscErrorResponse(const Error& error, Phase phase, std::string_view request_id) {
  if (internal::IsServerFault(error)) return internal::ServerFaultResponse(error, request_id);
  const int status = HttpStatusFor(error.code());
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition:
      // CSC has no not-found or conflict error: all of these are its invalid_request, which is
      // a 400 whatever HttpStatusFor says for the management API.
      return JsonErrorResponse(400, "invalid_request", error.message());
    case ErrorCode::kPermissionDenied:
      if (phase == Phase::kSad && service::SigningService::IsUnauthorizedHash(error)) {
        return JsonErrorResponse(status, "invalid_hash", error.message());
      }
      return JsonErrorResponse(status, "access_denied", error.message());
    case ErrorCode::kUnauthenticated: {
      if (phase == Phase::kActivation || phase == Phase::kSad) {
        return JsonErrorResponse(400, "invalid_request", error.message());
      }
      const std::string_view csc =
          phase == Phase::kLogin ? "invalid_authentication_data" : "invalid_token";
      Response r = JsonErrorResponse(status, csc, error.message());
      // RFC 6750 §3: a 401 names the scheme the route wants (a login also takes Basic).
      r.headers.emplace_back("WWW-Authenticate", phase == Phase::kLogin
                                                     ? "Basic realm=\"signet\""
                                                     : "Bearer realm=\"signet\"");
      return r;
    }
    case ErrorCode::kResourceExhausted:
      return JsonErrorResponse(status, "too_many_requests", error.message());
    case ErrorCode::kUnavailable:
    case ErrorCode::kDataLoss:
    case ErrorCode::kInternal:
      break;  // server faults, answered above
  }
  return internal::ServerFaultResponse(error, request_id);
}

Response BadRequest(std::string_view description) {
  return JsonErrorResponse(400, "invalid_request", description);
}

// How much of a client's value an error message repeats (escaped): enough to recognise it.
constexpr size_t kEchoBytes = 128;

Result<HashAlgorithm> ParseHashOid(std::string_view oid) {
  auto h = HashFromOid(oid);
  if (!h) {
    return InvalidArgument("'hashAlgorithmOID' " + OneLineSafe(oid, kEchoBytes) +
                           " is not supported; use SHA-256, SHA-384 or SHA-512 "
                           "(2.16.840.1.101.3.4.2.1/2/3)");
  }
  return *h;
}

// hashes[]: base64 digests, each DigestSize(hash) long.
Result<std::vector<Bytes>> ReqHashes(const json& body, HashAlgorithm hash) {
  auto it = body.find("hashes");
  if (it == body.end() || it->is_null()) return InvalidArgument("'hashes' is required");
  if (!it->is_array()) return InvalidArgument("'hashes' must be an array of base64 strings");
  if (it->empty()) return InvalidArgument("'hashes' must not be empty");
  if (static_cast<int64_t>(it->size()) > service::kMaxSignaturesPerAuthorization) {
    return InvalidArgument("'hashes' holds too many entries");
  }
  std::vector<Bytes> hashes;
  hashes.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& h = (*it)[i];
    const std::string where = "'hashes[" + std::to_string(i) + "]'";
    if (!h.is_string()) return InvalidArgument(where + " must be a base64 string");
    auto decoded = Base64Decode(h.get<std::string>());
    if (!decoded.ok()) return InvalidArgument(where + " is not valid base64");
    if (decoded->size() != DigestSize(hash)) {
      return InvalidArgument(where + " is " + std::to_string(decoded->size()) + " bytes; a " +
                             std::string(HashAlgorithmName(hash)) + " hash is " +
                             std::to_string(DigestSize(hash)));
    }
    hashes.push_back(std::move(decoded).value());
  }
  return hashes;
}

// RSASSA-PSS-params (RFC 8017 A.2.3), DER. Accepted only with MGF1 over the same hash as the
// message hash, salt length = hash length and trailer field 1 (absent). Returns the hash.
Result<HashAlgorithm> ParsePssParams(ByteView der) {
  const unsigned char* p = der.data();
  std::unique_ptr<RSA_PSS_PARAMS, decltype(&RSA_PSS_PARAMS_free)> params(
      d2i_RSA_PSS_PARAMS(nullptr, &p, static_cast<long>(der.size())), RSA_PSS_PARAMS_free);
  if (!params || p != der.data() + der.size()) {
    return InvalidArgument("'signAlgoParams' is not a DER RSASSA-PSS-params");
  }
  // d2i also takes BER (indefinite or non-minimal lengths): only the DER encoding of what it
  // read is the same bytes again.
  unsigned char* again = nullptr;
  const int again_len = i2d_RSA_PSS_PARAMS(params.get(), &again);
  const bool canonical =
      again_len == static_cast<int>(der.size()) && std::equal(der.begin(), der.end(), again);
  OPENSSL_free(again);
  if (!canonical) {
    return InvalidArgument("'signAlgoParams' is not in DER (the distinguished encoding)");
  }
  auto hash_of = [](const X509_ALGOR* alg) -> std::optional<HashAlgorithm> {
    if (alg == nullptr) return std::nullopt;  // default SHA-1: refused
    // The SHA-2 identifiers take no parameters: absent or NULL (RFC 5754 §2), nothing else.
    if (alg->parameter != nullptr && alg->parameter->type != V_ASN1_NULL) return std::nullopt;
    switch (OBJ_obj2nid(alg->algorithm)) {
      case NID_sha256:
        return HashAlgorithm::kSha256;
      case NID_sha384:
        return HashAlgorithm::kSha384;
      case NID_sha512:
        return HashAlgorithm::kSha512;
      default:
        return std::nullopt;
    }
  };
  std::optional<HashAlgorithm> hash = hash_of(params->hashAlgorithm);
  if (!hash) {
    return InvalidArgument("'signAlgoParams': the PSS hash must be SHA-256, SHA-384 or SHA-512");
  }
  const X509_ALGOR* mgf = params->maskGenAlgorithm;
  if (mgf == nullptr || OBJ_obj2nid(mgf->algorithm) != NID_mgf1 || mgf->parameter == nullptr ||
      mgf->parameter->type != V_ASN1_SEQUENCE) {
    return InvalidArgument("'signAlgoParams': only MGF1 with the message hash is supported");
  }
  const ASN1_STRING* seq = mgf->parameter->value.sequence;
  const unsigned char* q = seq->data;
  std::unique_ptr<X509_ALGOR, decltype(&X509_ALGOR_free)> mgf_hash(
      d2i_X509_ALGOR(nullptr, &q, seq->length), X509_ALGOR_free);
  if (!mgf_hash || q != seq->data + seq->length || hash_of(mgf_hash.get()) != hash) {
    return InvalidArgument("'signAlgoParams': only MGF1 with the message hash is supported");
  }
  int64_t salt = 20;  // the DEFAULT
  if (params->saltLength != nullptr && ASN1_INTEGER_get_int64(&salt, params->saltLength) != 1) {
    return InvalidArgument("'signAlgoParams': bad saltLength");
  }
  if (salt != static_cast<int64_t>(DigestSize(*hash))) {
    return InvalidArgument("'signAlgoParams': the salt length must equal the hash length (" +
                           std::to_string(DigestSize(*hash)) + ")");
  }
  if (params->trailerField != nullptr) {
    int64_t trailer = 0;
    if (ASN1_INTEGER_get_int64(&trailer, params->trailerField) != 1 || trailer != 1) {
      return InvalidArgument("'signAlgoParams': the trailer field must be 1");
    }
  }
  return *hash;
}

struct SignAlgo {
  SignatureScheme scheme;
  HashAlgorithm hash;
};

// signAlgo (+ signAlgoParams, hashAlgorithmOID) -> scheme and hash.
Result<SignAlgo> ParseSignAlgo(const json& body) {
  SIGNET_ASSIGN_OR_RETURN(std::string algo, ReqString(body, "signAlgo"));
  SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> hash_oid, OptString(body, "hashAlgorithmOID"));
  SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> params_b64, OptString(body, "signAlgoParams"));
  std::optional<HashAlgorithm> given;
  if (hash_oid) {
    SIGNET_ASSIGN_OR_RETURN(HashAlgorithm h, ParseHashOid(*hash_oid));
    given = h;
  }
  // An algorithm that names its hash; hashAlgorithmOID, if sent, must agree.
  auto implied = [&](SignatureScheme scheme, HashAlgorithm hash) -> Result<SignAlgo> {
    if (params_b64) return InvalidArgument("'signAlgoParams' is only used with RSASSA-PSS");
    if (given && *given != hash) {
      return InvalidArgument("'hashAlgorithmOID' does not match the hash of 'signAlgo'");
    }
    return SignAlgo{scheme, hash};
  };
  if (algo == kOidSha256WithRsa)
    return implied(SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256);
  if (algo == kOidSha384WithRsa)
    return implied(SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha384);
  if (algo == kOidSha512WithRsa)
    return implied(SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha512);
  if (algo == kOidEcdsaSha256) return implied(SignatureScheme::kEcdsa, HashAlgorithm::kSha256);
  if (algo == kOidEcdsaSha384) return implied(SignatureScheme::kEcdsa, HashAlgorithm::kSha384);
  if (algo == kOidEcdsaSha512) return implied(SignatureScheme::kEcdsa, HashAlgorithm::kSha512);
  if (algo == kOidRsaEncryption) {
    if (params_b64) return InvalidArgument("'signAlgoParams' is only used with RSASSA-PSS");
    if (!given) return InvalidArgument("'hashAlgorithmOID' is required with rsaEncryption");
    return SignAlgo{SignatureScheme::kRsaPkcs1v15, *given};
  }
  // ecPublicKey, which credentials/info lists for EC keys, names ECDSA without a hash; the hash
  // comes from hashAlgorithmOID, as with rsaEncryption.
  if (algo == kOidEcPublicKey) {
    if (params_b64) return InvalidArgument("'signAlgoParams' is only used with RSASSA-PSS");
    if (!given) return InvalidArgument("'hashAlgorithmOID' is required with ecPublicKey");
    return SignAlgo{SignatureScheme::kEcdsa, *given};
  }
  if (algo == kOidRsaPss) {
    if (!params_b64) {
      // Without parameters: the message hash from hashAlgorithmOID, MGF1 with it, salt = hash
      // length (the only PSS variant signet produces).
      if (!given) {
        return InvalidArgument("RSASSA-PSS needs 'signAlgoParams' or 'hashAlgorithmOID'");
      }
      return SignAlgo{SignatureScheme::kRsaPss, *given};
    }
    auto der = Base64Decode(*params_b64);
    if (!der.ok()) return InvalidArgument("'signAlgoParams' is not valid base64");
    SIGNET_ASSIGN_OR_RETURN(HashAlgorithm h, ParsePssParams(*der));
    if (given && *given != h) {
      return InvalidArgument("'hashAlgorithmOID' does not match the hash in 'signAlgoParams'");
    }
    return SignAlgo{SignatureScheme::kRsaPss, h};
  }
  return InvalidArgument("'signAlgo' " + OneLineSafe(algo, kEchoBytes) + " is not supported");
}

// ---- credential descriptions
// ---------------------------------------------------------------------

// key{} of credentials/info. `algo` lists the signAlgo OIDs the key's policy lets signHash accept
// (for RSA PKCS#1 v1.5 also rsaEncryption, which takes the hash from hashAlgorithmOID; for ECDSA
// also ecPublicKey), so that a client picks one that will not be refused.
Result<json> KeyInfo(const store::KeyRecord& key, const service::KeyPolicy& policy) {
  SIGNET_ASSIGN_OR_RETURN(
      KeyAlgorithm alg,
      service::StoredKeyField(key, "algorithm", ParseKeyAlgorithm(key.algorithm)));
  auto scheme_allowed = [&](SignatureScheme s) {
    return std::find(policy.allowed_sign_schemes.begin(), policy.allowed_sign_schemes.end(), s) !=
           policy.allowed_sign_schemes.end();
  };
  auto hash_allowed = [&](HashAlgorithm h) {
    return std::find(policy.allowed_hash_algorithms.begin(), policy.allowed_hash_algorithms.end(),
                     h) != policy.allowed_hash_algorithms.end();
  };
  struct ByHash {
    HashAlgorithm hash;
    std::string_view oid;
  };
  json k;
  k["status"] = key.state == store::KeyState::kActive ? "enabled" : "disabled";
  json algos = json::array();
  // The scheme's OIDs that name a hash, for the hashes the policy allows.
  auto add_allowed_hashes = [&](std::initializer_list<ByHash> oids) {
    for (const ByHash& b : oids) {
      if (hash_allowed(b.hash)) algos.push_back(b.oid);
    }
  };
  switch (alg) {
    case KeyAlgorithm::kRsa3072:
    case KeyAlgorithm::kRsa4096:
      if (scheme_allowed(SignatureScheme::kRsaPkcs1v15)) {
        algos.push_back(kOidRsaEncryption);
        add_allowed_hashes({{HashAlgorithm::kSha256, kOidSha256WithRsa},
                            {HashAlgorithm::kSha384, kOidSha384WithRsa},
                            {HashAlgorithm::kSha512, kOidSha512WithRsa}});
      }
      if (scheme_allowed(SignatureScheme::kRsaPss)) algos.push_back(kOidRsaPss);
      k["len"] = alg == KeyAlgorithm::kRsa3072 ? 3072 : 4096;
      break;
    case KeyAlgorithm::kEcP256:
    case KeyAlgorithm::kEcP384:
      if (scheme_allowed(SignatureScheme::kEcdsa)) {
        algos.push_back(kOidEcPublicKey);
        add_allowed_hashes({{HashAlgorithm::kSha256, kOidEcdsaSha256},
                            {HashAlgorithm::kSha384, kOidEcdsaSha384},
                            {HashAlgorithm::kSha512, kOidEcdsaSha512}});
      }
      k["len"] = alg == KeyAlgorithm::kEcP256 ? 256 : 384;
      k["curve"] = alg == KeyAlgorithm::kEcP256 ? kOidP256 : kOidP384;
      break;
    case KeyAlgorithm::kEd25519:  // CreateKey refuses it: only a damaged store holds one
      return DataLoss("key '" + key.name + "' is not a code-signing key");
  }
  k["algo"] = std::move(algos);
  return k;
}

// The certificate chain stored for `key`, parsed against its stored public key; DataLoss if
// either no longer parses (StoredKeyField).
Result<pki::CertificateChain> StoredChain(const store::KeyRecord& key) {
  SIGNET_ASSIGN_OR_RETURN(
      Bytes spki, service::StoredKeyField(key, "public key", Base64Decode(key.public_key_spki)));
  return service::StoredKeyField(key, "certificate chain",
                                 pki::ParseChainForKey(key.certificate_chain_pem, spki));
}

// Whether a signature by `key` at `now` can be valid (CSC credentials/list onlyValid): the key
// is enabled and has a certificate chain whose leaf is within its validity period.
Result<bool> UsableForValidSignatures(const store::KeyRecord& key, TimePoint now) {
  if (key.state != store::KeyState::kActive || key.certificate_chain_pem.empty()) return false;
  SIGNET_ASSIGN_OR_RETURN(pki::CertificateChain chain, StoredChain(key));
  return now >= chain.not_before && now < chain.not_after;
}

// cert{} for a key with a stored chain; `mode` is CSC's certificates: none / single / chain.
Result<json> CertInfo(const store::KeyRecord& key, std::string_view mode, bool cert_info,
                      TimePoint now) {
  SIGNET_ASSIGN_OR_RETURN(pki::CertificateChain chain, StoredChain(key));
  json c;
  c["status"] = (now < chain.not_before || now >= chain.not_after) ? "expired" : "valid";
  if (mode != "none") {
    json certs = json::array();
    for (const Bytes& der : chain.certificates_der) {
      certs.push_back(Base64Encode(der));
      if (mode == "single") break;
    }
    c["certificates"] = std::move(certs);
  }
  if (cert_info) {
    c["issuerDN"] = chain.leaf_issuer;
    c["serialNumber"] = chain.leaf_serial_hex;
    c["subjectDN"] = chain.leaf_subject;
    c["validFrom"] = chain.not_before_text;
    c["validTo"] = chain.not_after_text;
  }
  return c;
}

struct InfoOptions {
  std::string certificates = "single";
  bool cert_info = false;
  bool auth_info = false;
};

Result<InfoOptions> ParseInfoOptions(const json& body) {
  InfoOptions o;
  SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> certs, OptString(body, "certificates"));
  if (certs) {
    if (*certs != "none" && *certs != "single" && *certs != "chain") {
      return InvalidArgument("'certificates' must be none, single or chain");
    }
    o.certificates = *certs;
  }
  SIGNET_ASSIGN_OR_RETURN(std::optional<bool> ci, OptBool(body, "certInfo"));
  SIGNET_ASSIGN_OR_RETURN(std::optional<bool> ai, OptBool(body, "authInfo"));
  o.cert_info = ci.value_or(false);
  o.auth_info = ai.value_or(false);
  return o;
}

Result<json> CredentialInfo(service::SigningService& signing, const service::Caller& caller,
                            const service::Principal& principal, const store::KeyRecord& key,
                            const InfoOptions& options, TimePoint now) {
  json info;
  SIGNET_ASSIGN_OR_RETURN(service::KeyPolicy policy, signing.GetPolicy(caller, key.id));
  SIGNET_ASSIGN_OR_RETURN(info["key"], KeyInfo(key, policy));
  if (!key.certificate_chain_pem.empty()) {
    SIGNET_ASSIGN_OR_RETURN(info["cert"],
                            CertInfo(key, options.certificates, options.cert_info, now));
  }
  json auth;
  auth["mode"] = "explicit";
  if (principal.kind == service::AccountKind::kPerson) {
    // Both factors are presented at auth/login (Basic password + "otp") and again, as authData,
    // with every credentials/authorize.
    auth["expression"] = "PIN AND OTP";
    if (options.auth_info) {
      auth["objects"] = json::array(
          {{{"type", "Password"},
            {"id", "PIN"},
            {"format", "A"},
            {"label", "Password"},
            {"description",
             "account password: HTTP Basic at auth/login, authData PIN at authorize"}},
           {{"type", "Password"},
            {"id", "OTP"},
            {"format", "N"},
            {"generator", "totp"},
            {"label", "One-time code"},
            {"description",
             "a fresh TOTP code: field \"otp\" at auth/login, authData OTP at authorize; "
             "each code is accepted once"}}});
    }
  } else {
    auth["description"] =
        "mutual TLS client certificate, presented at auth/login and on the connection of every "
        "request (the access token is bound to it)";
  }
  info["auth"] = std::move(auth);
  info["SCAL"] = "2";
  info["multisign"] = policy.max_signatures_per_authorization;
  return info;
}

// ---- the routes
// ----------------------------------------------------------------------------------

Response Info(const CscDependencies& deps) {
  json info;
  info["specs"] = kSpecs;
  info["name"] = deps.service_name;
  info["logo"] = "";
  info["region"] = "";
  info["lang"] = "en-US";
  info["description"] = "signet code-signing service";
  info["authType"] = {"basic", "TLS"};
  info["methods"] = {"auth/login",         "auth/revoke",           "credentials/list",
                     "credentials/info",   "credentials/authorize", "credentials/extendTransaction",
                     "signatures/signHash"};
  info["signAlgorithms"] = {
      {"algos",
       {kOidRsaEncryption, kOidSha256WithRsa, kOidSha384WithRsa, kOidSha512WithRsa, kOidRsaPss,
        kOidEcPublicKey, kOidEcdsaSha256, kOidEcdsaSha384, kOidEcdsaSha512}}};
  return JsonResponse(info);
}

Response Login(const CscDependencies& deps, const Request& request, const json& body) {
  const service::CallOrigin origin{request.client_address, request.request_id};
  // A refusal before any credential is checked is still an authentication attempt: recorded,
  // then answered (or, if the log cannot record it, the log's error is the answer).
  auto refuse = [&](Error error, Phase phase, std::string_view name = {}) {
    Status recorded = deps.accounts.RecordRefusedLogin(error.message(), origin, name);
    if (!recorded.ok()) return CscErrorResponse(recorded.error(), phase, request.request_id);
    return CscErrorResponse(error, phase, request.request_id);
  };
  Result<service::BearerToken> token = InternalError("unreachable");
  if (auto basic = AuthorizationParam(request, "Basic")) {
    auto decoded = Base64Decode(*basic);
    if (!decoded.ok()) {
      return refuse(InvalidArgument("the Basic credentials are not valid base64"), Phase::kBearer);
    }
    SecretBytes pair{ByteView(*decoded)};
    std::fill(decoded->begin(), decoded->end(), uint8_t{0});
    std::string_view text = pair.text_view();
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      return refuse(InvalidArgument("the Basic credentials lack a ':'"), Phase::kBearer);
    }
    const std::string_view name = text.substr(0, colon);
    auto otp = OptString(body, "otp");
    if (!otp.ok()) return refuse(otp.error(), Phase::kBearer, name);
    if (!otp->has_value() || (*otp)->empty()) {
      return refuse(
          InvalidArgument("'otp' (the TOTP code) is required with Basic authentication"),
          Phase::kBearer, name);
    }
    if (deps.password_logins && !deps.password_logins->TryAcquire()) {
      Response busy =
          JsonErrorResponse(503, "temporarily_unavailable",
                            "too many password logins are in progress; retry in a few seconds");
      busy.headers.emplace_back("Retry-After", "2");
      return busy;
    }
    struct Release {
      ConcurrencyLimit* limit;
      ~Release() {
        if (limit != nullptr) limit->Release();
      }
    } release{deps.password_logins.get()};
    SecretBytes password{text.substr(colon + 1)};
    token = deps.accounts.LoginWithPassword(name, password, **otp, origin);
  } else if (request.Header("authorization")) {
    return refuse(
        Unauthenticated("auth/login takes HTTP Basic credentials or a TLS client certificate"),
        Phase::kLogin);
  } else if (request.client_cert_sha256) {
    token = deps.accounts.LoginWithClientCertificate(*request.client_cert_sha256, origin);
  } else {
    Response r = refuse(
        Unauthenticated("auth/login needs HTTP Basic credentials and 'otp', or a TLS client "
                        "certificate"),
        Phase::kLogin);
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"signet\"");
    return r;
  }
  if (!token.ok()) return CscErrorResponse(token.error(), Phase::kLogin, request.request_id);
  auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(token->expires_at - deps.clock.Now());
  json out;
  out["access_token"] = std::string(token->token.text_view());
  out["expires_in"] = std::max<int64_t>(0, seconds.count());
  return JsonResponse(out);
}

Response Revoke(const CscDependencies& deps, const Request& request, const json& body) {
  auto who = AuthenticateBearer(deps.accounts, request, /*allow_password_change_due=*/true);
  if (!who.ok()) return CscErrorResponse(who.error(), Phase::kBearer, request.request_id);
  auto token = OptString(body, "token");
  if (!token.ok()) return CscErrorResponse(token.error(), Phase::kBearer, request.request_id);
  auto hint = OptString(body, "token_type_hint");
  if (!hint.ok()) return CscErrorResponse(hint.error(), Phase::kBearer, request.request_id);
  if (hint->has_value() && **hint != "access_token") {
    return BadRequest("'token_type_hint' must be access_token (signet issues no refresh tokens)");
  }
  if (token->has_value() && (*token)->empty()) {
    // An empty token names no token: answering 204 would tell the client that something was
    // revoked. Leave the field out to revoke the token of the request.
    return BadRequest(
        "'token' is empty; give the token to revoke, or leave it out to revoke "
        "the one this request carries");
  }
  std::string target = token->value_or(who->token);
  if (target != who->token) {
    // Only the caller's own tokens may be revoked here. Anything else (unknown, dead, another
    // account's) is answered alike, 204 without revoking (RFC 7009 §2.2), so that the answer is
    // no test of whether a token found elsewhere is live; OwnsLiveToken records it.
    auto own = deps.accounts.OwnsLiveToken(who->principal, target,
                                           {request.client_address, request.request_id});
    if (!own.ok()) return CscErrorResponse(own.error(), Phase::kBearer, request.request_id);
    if (!*own) {
      Response r;
      r.status = 204;
      return r;
    }
  }
  Status s = deps.accounts.RevokeToken(target, {request.client_address, request.request_id});
  if (!s.ok()) return CscErrorResponse(s.error(), Phase::kBearer, request.request_id);
  Response r;
  r.status = 204;
  return r;
}

Response ListCredentials(const CscDependencies& deps, const Request& request, const json& body) {
  auto who = AuthenticateBearer(deps.accounts, request);
  if (!who.ok()) return CscErrorResponse(who.error(), Phase::kBearer, request.request_id);
  auto user = OptString(body, "userID");
  if (!user.ok()) return CscErrorResponse(user.error(), Phase::kBearer, request.request_id);
  if (user->has_value() && **user != who->principal.account_id && **user != who->principal.name) {
    return CscErrorResponse(PermissionDenied("'userID' must be the authenticated account"),
                            Phase::kBearer, request.request_id);
  }
  auto with_info = OptBool(body, "credentialInfo");
  if (!with_info.ok())
    return CscErrorResponse(with_info.error(), Phase::kBearer, request.request_id);
  auto only_valid = OptBool(body, "onlyValid");
  if (!only_valid.ok())
    return CscErrorResponse(only_valid.error(), Phase::kBearer, request.request_id);
  auto options = ParseInfoOptions(body);
  if (!options.ok()) return CscErrorResponse(options.error(), Phase::kBearer, request.request_id);

  auto keys = deps.signing.ListGrantedCredentials(who->caller);
  if (!keys.ok()) return CscErrorResponse(keys.error(), Phase::kBearer, request.request_id);
  json ids = json::array();
  json infos = json::array();
  const TimePoint now = deps.clock.Now();
  for (const store::KeyRecord& key : *keys) {
    if (only_valid->value_or(false)) {
      // A stored chain that no longer parses is not usable either; it is not this call's error.
      auto usable = UsableForValidSignatures(key, now);
      if (!usable.ok() || !*usable) continue;
    }
    ids.push_back(key.id);
    if (with_info->value_or(false)) {
      auto info =
          CredentialInfo(deps.signing, who->caller, who->principal, key, *options, now);
      if (!info.ok()) return CscErrorResponse(info.error(), Phase::kBearer, request.request_id);
      (*info)["credentialID"] = key.id;
      infos.push_back(std::move(*info));
    }
  }
  json out;
  out["credentialIDs"] = std::move(ids);
  if (with_info->value_or(false)) out["credentialInfos"] = std::move(infos);
  if (only_valid->has_value()) out["onlyValid"] = **only_valid;
  return JsonResponse(out);
}

Response CredentialInfoRoute(const CscDependencies& deps, const Request& request,
                             const json& body) {
  auto who = AuthenticateBearer(deps.accounts, request);
  if (!who.ok()) return CscErrorResponse(who.error(), Phase::kBearer, request.request_id);
  auto credential = ReqString(body, "credentialID");
  if (!credential.ok())
    return CscErrorResponse(credential.error(), Phase::kBearer, request.request_id);
  auto options = ParseInfoOptions(body);
  if (!options.ok()) return CscErrorResponse(options.error(), Phase::kBearer, request.request_id);
  auto key = deps.signing.GetGrantedCredential(who->caller, *credential);
  if (!key.ok()) return CscErrorResponse(key.error(), Phase::kBearer, request.request_id);
  auto info =
      CredentialInfo(deps.signing, who->caller, who->principal, *key, *options, deps.clock.Now());
  if (!info.ok()) return CscErrorResponse(info.error(), Phase::kBearer, request.request_id);
  return JsonResponse(*info);
}

json SadJson(const service::Authorization& a) {
  json out;
  out["SAD"] = std::string(a.sad.text_view());
  out["expiresIn"] = a.expires_in.count();
  return out;
}

// A body the service never saw is still an attempt by an authenticated caller, so it is recorded
// (authorize_refused / sign_refused, with the reason) before the error goes back.
class MalformedRecorder {
 public:
  MalformedRecorder(const CscDependencies& deps, const service::Caller& caller,
                    service::AuditAction action)
      : deps_(deps), caller_(caller), action_(action) {}
  void set_credential(std::string credential) { credential_ = std::move(credential); }
  Response operator()(Error error, Phase phase = Phase::kBearer) const {
    return CscErrorResponse(
        deps_.signing.RecordMalformedRequest(caller_, action_, credential_, std::move(error)),
        phase, caller_.request_id);
  }

 private:
  const CscDependencies& deps_;
  const service::Caller& caller_;
  service::AuditAction action_;
  std::string credential_;  // once the body named one
};

// A person's second authentication for this activation, from CSC "authData": the objects
// credentials/info lists, [{"id":"PIN","value":<password>},{"id":"OTP","value":<TOTP code>}].
struct ActivationFactors {
  SecretBytes pin;
  std::string otp;
};

Result<ActivationFactors> ParseAuthData(const json& body) {
  constexpr std::string_view kNeeded =
      "a person authorizes with 'authData' holding {\"id\":\"PIN\",\"value\":<the account "
      "password>} and {\"id\":\"OTP\",\"value\":<a fresh one-time code>}";
  auto it = body.find("authData");
  if (it == body.end() || it->is_null()) return InvalidArgument(std::string(kNeeded));
  if (!it->is_array()) return InvalidArgument("'authData' must be an array of {id, value}");
  std::optional<SecretBytes> pin;
  std::optional<std::string> otp;
  for (const json& item : *it) {
    if (!item.is_object() || !item.contains("id") || !item["id"].is_string() ||
        !item.contains("value") || !item["value"].is_string()) {
      return InvalidArgument("each 'authData' item must be {\"id\": string, \"value\": string}");
    }
    const std::string& id = item["id"].get_ref<const std::string&>();
    const std::string& value = item["value"].get_ref<const std::string&>();
    if (id == "PIN" && !pin) {
      pin.emplace(std::string_view(value));
    } else if (id == "OTP" && !otp) {
      otp = value;
    } else {
      return InvalidArgument("'authData' holds an unknown or repeated id (only PIN and OTP, "
                             "once each)");
    }
  }
  if (!pin || !otp) return InvalidArgument(std::string(kNeeded));
  return ActivationFactors{std::move(*pin), std::move(*otp)};
}

Response Authorize(const CscDependencies& deps, const Request& request, const json& body) {
  // A bearer whose one-time password is due is refused here too, but as an attempt to
  // authorize, so that the log records it.
  auto who = AuthenticateBearer(deps.accounts, request, /*allow_password_change_due=*/true);
  if (!who.ok()) return CscErrorResponse(who.error(), Phase::kBearer, request.request_id);
  MalformedRecorder refuse(deps, who->caller, service::AuditAction::kAuthorizeRefused);
  if (Status due = CheckPasswordChangeNotDue(who->principal); !due.ok()) return refuse(due.error());
  auto credential = ReqString(body, "credentialID");
  if (!credential.ok()) return refuse(credential.error());
  refuse.set_credential(*credential);
  auto num = ReqInt(body, "numSignatures");
  if (!num.ok()) return refuse(num.error());
  auto oid = ReqString(body, "hashAlgorithmOID");
  if (!oid.ok()) return refuse(oid.error());
  auto hash = ParseHashOid(*oid);
  if (!hash.ok()) return refuse(hash.error());
  auto hashes = ReqHashes(body, *hash);
  if (!hashes.ok()) return refuse(hashes.error());
  auto description = OptString(body, "description");
  if (!description.ok()) return refuse(description.error());
  if (description->has_value()) {
    // CSC's limit is in characters: UTF-8 lead bytes (the parser took only valid UTF-8).
    const std::string& text = **description;
    const auto characters = std::count_if(text.begin(), text.end(), [](char c) {
      return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    });
    if (characters > 500) {
      return refuse(InvalidArgument("'description' is longer than 500 characters"));
    }
  }
  // Every activation is a fresh multi-factor authentication for people (CSBR 6.2.7.3); a service
  // account's rests on its mTLS login (server-to-server), and any authData it sends is unused.
  if (who->principal.kind == service::AccountKind::kPerson) {
    auto factors = ParseAuthData(body);
    if (!factors.ok()) return refuse(factors.error());
    // Before the factors: a one-time code spent on a request that is then refused (a count that
    // does not match the hashes, no grant, a policy's limit, the bound on open SADs) would make
    // the corrected request's code a replay, counted toward the lockout.
    if (Status checked =
            deps.signing.PrecheckAuthorize(who->caller, *credential, *hash, *hashes, *num);
        !checked.ok()) {
      return CscErrorResponse(
          deps.signing.RecordActivationRefusal(who->caller, *credential, *hash, *hashes, *num,
                                               "precheck", "", std::move(checked).error()),
          Phase::kBearer, request.request_id);
    }
    Status verified = deps.accounts.VerifyActivationFactors(
        who->principal, factors->pin, factors->otp, {request.client_address, request.request_id});
    if (!verified.ok()) {
      return CscErrorResponse(
          deps.signing.RecordActivationRefusal(who->caller, *credential, *hash, *hashes, *num,
                                               "activation", "", std::move(verified).error()),
          Phase::kActivation, request.request_id);
    }
  }
  auto a = deps.signing.Authorize(who->caller, *credential, *hash, *hashes, *num);
  if (!a.ok()) return CscErrorResponse(a.error(), Phase::kSad, request.request_id);
  return JsonResponse(SadJson(*a));
}

Response Extend(const CscDependencies& deps, const Request& request, const json& body) {
  // A bearer whose one-time password is due is refused here too, but as an attempt to
  // authorize, so that the log records it.
  auto who = AuthenticateBearer(deps.accounts, request, /*allow_password_change_due=*/true);
  if (!who.ok()) return CscErrorResponse(who.error(), Phase::kBearer, request.request_id);
  MalformedRecorder refuse(deps, who->caller, service::AuditAction::kAuthorizeRefused);
  if (Status due = CheckPasswordChangeNotDue(who->principal); !due.ok()) return refuse(due.error());
  auto credential = ReqString(body, "credentialID");
  if (!credential.ok()) return refuse(credential.error());
  refuse.set_credential(*credential);
  auto sad = ReqString(body, "SAD");
  if (!sad.ok()) return refuse(sad.error());
  auto oid = ReqString(body, "hashAlgorithmOID");
  if (!oid.ok()) return refuse(oid.error());
  auto hash = ParseHashOid(*oid);
  if (!hash.ok()) return refuse(hash.error());
  auto hashes = ReqHashes(body, *hash);
  if (!hashes.ok()) return refuse(hashes.error());
  // New hashes are a new activation: for a person, with the password and a fresh one-time code,
  // as in authorize. Otherwise whoever held a person's bearer token and one SAD (malware on a
  // build machine) could bind hashes of its choosing for the transaction's hour with neither.
  if (who->principal.kind == service::AccountKind::kPerson) {
    auto factors = ParseAuthData(body);
    if (!factors.ok()) return refuse(factors.error());
    const auto count = static_cast<int64_t>(hashes->size());
    // Before the factors, as in authorize: a code spent on an extension refused for its SAD
    // (expired, another's, the transaction too old or too large) would make the corrected request a
    // replay.
    if (Status checked = deps.signing.PrecheckExtend(
            who->caller, *credential, SecretBytes{std::string_view(*sad)}, *hash, *hashes);
        !checked.ok()) {
      return CscErrorResponse(deps.signing.RecordActivationRefusal(
                                  who->caller, *credential, *hash, *hashes, count, "precheck",
                                  "extend_transaction", std::move(checked).error()),
                              Phase::kSad, request.request_id);
    }
    Status verified = deps.accounts.VerifyActivationFactors(
        who->principal, factors->pin, factors->otp, {request.client_address, request.request_id});
    if (!verified.ok()) {
      return CscErrorResponse(deps.signing.RecordActivationRefusal(
                                  who->caller, *credential, *hash, *hashes, count, "activation",
                                  "extend_transaction", std::move(verified).error()),
                              Phase::kActivation, request.request_id);
    }
  }
  SecretBytes sad_secret{std::string_view(*sad)};
  auto a = deps.signing.ExtendTransaction(who->caller, *credential, sad_secret, *hash, *hashes);
  if (!a.ok()) return CscErrorResponse(a.error(), Phase::kSad, request.request_id);
  return JsonResponse(SadJson(*a));
}

Response SignHash(const CscDependencies& deps, const Request& request, const json& body) {
  // As in Authorize: a due one-time password is refused as a recorded sign_refused.
  auto who = AuthenticateBearer(deps.accounts, request, /*allow_password_change_due=*/true);
  if (!who.ok()) return CscErrorResponse(who.error(), Phase::kBearer, request.request_id);
  MalformedRecorder refuse(deps, who->caller, service::AuditAction::kSignRefused);
  if (Status due = CheckPasswordChangeNotDue(who->principal); !due.ok()) return refuse(due.error());
  auto credential = ReqString(body, "credentialID");
  if (!credential.ok()) return refuse(credential.error());
  refuse.set_credential(*credential);
  auto sad = ReqString(body, "SAD");
  if (!sad.ok()) return refuse(sad.error());
  auto mode = OptString(body, "operationMode");
  if (!mode.ok()) return refuse(mode.error());
  if (mode->has_value() && **mode != "S") {
    return refuse(
        InvalidArgument("'operationMode' must be S (asynchronous signing is not supported)"));
  }
  auto algo = ParseSignAlgo(body);
  if (!algo.ok()) return refuse(algo.error());
  auto hashes = ReqHashes(body, algo->hash);
  if (!hashes.ok()) return refuse(hashes.error());
  SecretBytes sad_secret{std::string_view(*sad)};
  auto sigs = deps.signing.SignHash(who->caller, *credential, sad_secret, *hashes, algo->scheme,
                                    algo->hash);
  if (!sigs.ok()) {
    Response refused = CscErrorResponse(sigs.error(), Phase::kSad, request.request_id);
    // A per-minute limit frees at the next window, and nothing was consumed: say when to retry
    // (RFC 6585 §4), which HttpsClient and other clients honour.
    if (auto after = service::SigningService::RateLimitRetryAfter(sigs.error(), deps.clock.Now())) {
      refused.headers.emplace_back("Retry-After", std::to_string(*after));
    }
    return refused;
  }
  json list = json::array();
  for (const Bytes& s : *sigs) list.push_back(Base64Encode(s));
  json out;
  out["signatures"] = std::move(list);
  return JsonResponse(out);
}

}  // namespace

Status RegisterCscRoutes(Router& router, CscDependencies deps) {
  // One shared copy; the handlers hold it (the references inside point at the services).
  auto d = std::make_shared<const CscDependencies>(std::move(deps));
  struct Entry {
    std::string_view name;
    std::function<Response(const CscDependencies&, const Request&, const json&)> fn;
    bool blocking;
  };
  // Bodies are JSON objects (empty: {}; CSC clients send info/list without one). Unknown fields
  // are ignored: clientData, lang, ... are optional in CSC. A principal that must change its
  // one-time password may only revoke its token here.
  // Everything but info touches the database (and signHash the HSM): run on the worker pool.
  const std::vector<Entry> entries = {
      {"info", [](const CscDependencies& c, const Request&, const json&) { return Info(c); },
       false},
      {"auth/login", Login, true},
      {"auth/revoke", Revoke, true},
      {"credentials/list", ListCredentials, true},
      {"credentials/info", CredentialInfoRoute, true},
      {"credentials/authorize", Authorize, true},
      {"credentials/extendTransaction", Extend, true},
      {"signatures/signHash", SignHash, true},
  };
  for (const Entry& e : entries) {
    auto fn = e.fn;
    SIGNET_TRY(router.Add(
        "POST", std::string(kPrefix) + std::string(e.name),
        internal::JsonRoute([d, fn](const Request& r, const json& b) { return fn(*d, r, b); },
                            [](const Error& error, const Request& r) {
                              return CscErrorResponse(error, Phase::kBearer, r.request_id);
                            }),
        RouteOptions{.blocking = e.blocking}));
  }
  return OkStatus();
}

}  // namespace signet::server::csc
