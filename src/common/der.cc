#include "common/der.h"

namespace signet::der {

Bytes Tlv(uint8_t tag, ByteView contents) {
  Bytes out;
  out.reserve(contents.size() + 6);
  out.push_back(tag);
  size_t n = contents.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else {
    uint8_t len_bytes[sizeof(size_t)];
    int count = 0;
    for (size_t v = n; v > 0; v >>= 8) len_bytes[count++] = static_cast<uint8_t>(v & 0xff);
    out.push_back(static_cast<uint8_t>(0x80 | count));
    while (count > 0) out.push_back(len_bytes[--count]);
  }
  out.insert(out.end(), contents.begin(), contents.end());
  return out;
}

Bytes Sequence(ByteView contents) { return Tlv(0x30, contents); }

Bytes UnsignedInteger(ByteView big_endian) {
  size_t start = 0;
  while (start + 1 < big_endian.size() && big_endian[start] == 0) ++start;
  Bytes value;
  if (big_endian.empty()) {
    value.push_back(0);
  } else {
    if (big_endian[start] & 0x80) value.push_back(0);
    value.insert(value.end(), big_endian.begin() + static_cast<std::ptrdiff_t>(start),
                 big_endian.end());
  }
  return Tlv(0x02, value);
}

Bytes BitString(ByteView contents) {
  Bytes value;
  value.reserve(contents.size() + 1);
  value.push_back(0);
  value.insert(value.end(), contents.begin(), contents.end());
  return Tlv(0x03, value);
}

Bytes OctetString(ByteView contents) { return Tlv(0x04, contents); }

Bytes Null() { return Bytes{0x05, 0x00}; }

Bytes Concat(std::initializer_list<ByteView> parts) {
  Bytes out;
  for (ByteView p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Result<Bytes> ParseOctetString(ByteView der) {
  if (der.size() < 2 || der[0] != 0x04) return InvalidArgument("DER: not an OCTET STRING");
  size_t len = 0;
  size_t header = 2;
  if (der[1] < 0x80) {
    len = der[1];
  } else {
    size_t count = der[1] & 0x7f;
    if (count == 0 || count > 4 || der.size() < 2 + count) {
      return InvalidArgument("DER: bad OCTET STRING length");
    }
    for (size_t i = 0; i < count; ++i) len = (len << 8) | der[2 + i];
    // DER (X.690 10.1): the fewest octets, so no leading zero octet and no long form below 128.
    if (len < 0x80 || der[2] == 0) {
      return InvalidArgument("DER: non-minimal OCTET STRING length");
    }
    header += count;
  }
  if (header + len != der.size()) {
    return InvalidArgument("DER: OCTET STRING length does not match the data");
  }
  return Bytes(der.begin() + static_cast<std::ptrdiff_t>(header), der.end());
}

Result<Bytes> EcdsaRawToDer(ByteView raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return InvalidArgument("ECDSA signature: raw r||s has odd or zero length " +
                           std::to_string(raw.size()));
  }
  size_t half = raw.size() / 2;
  Bytes r = UnsignedInteger(raw.first(half));
  Bytes s = UnsignedInteger(raw.subspan(half));
  return Sequence(Concat({r, s}));
}

}  // namespace signet::der
