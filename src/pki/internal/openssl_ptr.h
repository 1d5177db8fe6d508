// Owning pointers for OpenSSL objects, declared once for all of pki/ (in the manner of BoringSSL's
// bssl::UniquePtr): `UniquePtr<X509> cert(d2i_X509(...));` frees the object with X509_free when it
// goes out of scope. After handing an object to an OpenSSL "set0"/"push" function that takes
// ownership, call release().
//
// OpenSSL naming reminder: get0 returns a borrowed pointer (do not free, valid while the parent
// lives); get1 and the *_new/d2i_* functions return an owned one (wrap it here).
//
// Private to pki/; nothing outside src/pki/ includes OpenSSL headers.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace signet::pki::internal {

// Calls `Free` on the pointer; specialised below for every type pki/ owns.
template <typename T, void (*Free)(T*)>
struct FreeFunction {
  void operator()(T* ptr) const { Free(ptr); }
};

template <typename T>
struct Deleter;  // Undefined for types without an entry below, so misuse fails to compile.

// ASN1_STRING, ASN1_BIT_STRING, ASN1_OCTET_STRING, ASN1_INTEGER and ASN1_TIME are all the same
// struct (asn1_string_st) in OpenSSL, so one deleter serves them all.
template <>
struct Deleter<ASN1_STRING> : FreeFunction<ASN1_STRING, ASN1_STRING_free> {};
template <>
struct Deleter<ASN1_OBJECT> : FreeFunction<ASN1_OBJECT, ASN1_OBJECT_free> {};
template <>
struct Deleter<BIGNUM> : FreeFunction<BIGNUM, BN_free> {};
template <>
struct Deleter<BIO> : FreeFunction<BIO, BIO_free_all> {};
template <>
struct Deleter<EVP_MD_CTX> : FreeFunction<EVP_MD_CTX, EVP_MD_CTX_free> {};
template <>
struct Deleter<EVP_PKEY> : FreeFunction<EVP_PKEY, EVP_PKEY_free> {};
template <>
struct Deleter<EVP_PKEY_CTX> : FreeFunction<EVP_PKEY_CTX, EVP_PKEY_CTX_free> {};
template <>
struct Deleter<X509> : FreeFunction<X509, X509_free> {};
template <>
struct Deleter<X509_ALGOR> : FreeFunction<X509_ALGOR, X509_ALGOR_free> {};
template <>
struct Deleter<X509_EXTENSION> : FreeFunction<X509_EXTENSION, X509_EXTENSION_free> {};
template <>
struct Deleter<X509_NAME> : FreeFunction<X509_NAME, X509_NAME_free> {};
template <>
struct Deleter<X509_PUBKEY> : FreeFunction<X509_PUBKEY, X509_PUBKEY_free> {};
template <>
struct Deleter<X509_REQ> : FreeFunction<X509_REQ, X509_REQ_free> {};

template <typename T>
using UniquePtr = std::unique_ptr<T, Deleter<T>>;

}  // namespace signet::pki::internal
