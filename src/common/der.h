// A minimal DER writer (ITU-T X.690 §10) for the few structures signet assembles without OpenSSL:
// SubjectPublicKeyInfo from PKCS#11 attributes and ECDSA-Sig-Value from raw r||s. Only definite
// lengths and single-byte tags are produced. Pure functions, thread-safe.
#pragma once

#include <cstdint>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::der {

// Tag, length and the given contents.
Bytes Tlv(uint8_t tag, ByteView contents);
Bytes Sequence(ByteView contents);
// INTEGER from an unsigned big-endian magnitude: leading zeros dropped, 0x00 added when the top
// bit is set, so the value stays positive.
Bytes UnsignedInteger(ByteView big_endian);
Bytes BitString(ByteView contents);  // with zero unused bits
Bytes OctetString(ByteView contents);
Bytes Null();
Bytes Concat(std::initializer_list<ByteView> parts);

// Reads one DER OCTET STRING that spans all of `der` and returns its contents.
Result<Bytes> ParseOctetString(ByteView der);

// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3) from r||s of equal halves.
Result<Bytes> EcdsaRawToDer(ByteView raw);

}  // namespace signet::der
