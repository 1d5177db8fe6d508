// The subject attribute types pki/ accepts and the rules their values follow; shared by
// ParseSubject (subject.cc) and CreateCsrPem (csr.cc), which re-checks a DistinguishedName built by
// hand. Private to pki/. Pure and thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/result.h"
#include "pki/pki.h"

namespace signet::pki::internal {

enum class ValueRule {
  kUtf8,              // any UTF-8 text without control characters
  kPrintable,         // X.520 PrintableString characters only
  kCountryCode,       // two upper-case ASCII letters
  kBusinessCategory,  // one of the four CSBR/EV values
};

struct AttributeType {
  std::string_view short_name;  // canonical name, stored in DistinguishedName
  std::string_view long_name;
  std::string_view oid;  // dotted form, for OBJ_txt2obj
  size_t max_chars;      // upper bound in characters (RFC 5280 Appendix A / X.520)
  ValueRule rule;
  bool repeatable;
};

// The entry whose short or long name equals `name`, ignoring ASCII case; nullptr if none.
const AttributeType* FindAttributeType(std::string_view name);

// Checks every attribute of `dn` (types must be canonical short names) and the DN as a whole
// (CN present, no repeats of single-valued types, count limit). InvalidArgument names the
// attribute by its 1-based position.
Status ValidateDistinguishedName(const DistinguishedName& dn);

}  // namespace signet::pki::internal
