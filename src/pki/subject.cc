// ParseSubject and DistinguishedName (pki.h) with the attribute rules of internal/subject.h.
//
// The parser walks the text with an index that is compared with the size before every read; no
// input can make it read out of bounds. Error messages quote untrusted text only through
// QuoteForMessage (bounded length, non-printable bytes escaped).

#include "pki/internal/subject.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "pki/internal/openssl_util.h"
#include "pki/pki.h"

namespace signet::pki {
namespace internal {
namespace {

constexpr std::array<AttributeType, 13> kAttributeTypes = {{
    {"CN", "commonName", "2.5.4.3", 64, ValueRule::kUtf8, false},
    {"O", "organizationName", "2.5.4.10", 64, ValueRule::kUtf8, false},
    {"OU", "organizationalUnitName", "2.5.4.11", 64, ValueRule::kUtf8, true},
    {"C", "countryName", "2.5.4.6", 2, ValueRule::kCountryCode, false},
    {"ST", "stateOrProvinceName", "2.5.4.8", 128, ValueRule::kUtf8, false},
    {"L", "localityName", "2.5.4.7", 128, ValueRule::kUtf8, false},
    {"street", "streetAddress", "2.5.4.9", 128, ValueRule::kUtf8, true},
    {"postalCode", "postalCode", "2.5.4.17", 40, ValueRule::kUtf8, false},
    {"serialNumber", "serialNumber", "2.5.4.5", 64, ValueRule::kPrintable, false},
    {"businessCategory", "businessCategory", "2.5.4.15", 128, ValueRule::kBusinessCategory, false},
    {"jurisdictionC", "jurisdictionCountryName", "1.3.6.1.4.1.311.60.2.1.3", 2,
     ValueRule::kCountryCode, false},
    {"jurisdictionST", "jurisdictionStateOrProvinceName", "1.3.6.1.4.1.311.60.2.1.2", 128,
     ValueRule::kUtf8, false},
    {"jurisdictionL", "jurisdictionLocalityName", "1.3.6.1.4.1.311.60.2.1.1", 128, ValueRule::kUtf8,
     false},
}};

constexpr std::array<std::string_view, 4> kBusinessCategories = {
    "Private Organization", "Government Entity", "Business Entity", "Non-Commercial Entity"};

bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string AcceptedTypeList() {
  std::string out;
  for (const AttributeType& type : kAttributeTypes) {
    if (!out.empty()) out += ", ";
    out += type.short_name;
  }
  return out;
}

std::string Where(size_t index, std::string_view type) {
  return "subject attribute " + std::to_string(index) + " (" + std::string(type) + ")";
}

// Unicode's White_Space property (PropList.txt, Unicode 15), past ASCII's space.
bool IsUnicodeSpace(uint32_t c) {
  return c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
         c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Unicode's general category Cf (format characters: invisible, or reordering the text around
// them, e.g. U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH SPACE, U+FEFF), from
// UnicodeData.txt (Unicode 15). A name that shows other than it reads has no place in a
// certificate that tells users who signed their software.
bool IsFormatCharacter(uint32_t c) {
  return c == 0xad || (c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f ||
         c == 0x890 || c == 0x891 || c == 0x8e2 || c == 0x180e || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x202a && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) ||
         (c >= 0x2066 && c <= 0x206f) || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) ||
         c == 0x110bd || c == 0x110cd || (c >= 0x13430 && c <= 0x1343f) ||
         (c >= 0x1bca0 && c <= 0x1bca3) || (c >= 0x1d173 && c <= 0x1d17a) || c == 0xe0001 ||
         (c >= 0xe0020 && c <= 0xe007f);
}

// The code points of valid UTF-8 `text` (as CountCharacters has checked it).
std::vector<uint32_t> CodePoints(std::string_view text) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < text.size();) {
    auto byte = static_cast<unsigned char>(text[i]);
    const size_t extra = byte < 0x80 ? 0 : byte < 0xe0 ? 1 : byte < 0xf0 ? 2 : 3;
    uint32_t c = extra == 0 ? byte : byte & (0x3fu >> extra);
    for (size_t k = 1; k <= extra && i + k < text.size(); ++k) {
      c = (c << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3fu);
    }
    out.push_back(c);
    i += extra + 1;
  }
  return out;
}

// Counts the code points of `text` if it is valid UTF-8 (RFC 3629 §4: no overlong forms, no
// surrogates, nothing above U+10FFFF) without control characters (C0, DEL, C1) or format
// characters (IsFormatCharacter). Otherwise returns an error message describing the first problem.
Result<size_t> CountCharacters(std::string_view text) {
  size_t count = 0;
  size_t i = 0;
  while (i < text.size()) {
    auto byte = static_cast<unsigned char>(text[i]);
    uint32_t code_point = 0;
    size_t extra = 0;
    if (byte < 0x80) {
      code_point = byte;
    } else if (byte >= 0xc2 && byte <= 0xdf) {
      code_point = byte & 0x1fu;
      extra = 1;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      code_point = byte & 0x0fu;
      extra = 2;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      code_point = byte & 0x07u;
      extra = 3;
    } else {
      return InvalidArgument("is not valid UTF-8 (byte " + std::to_string(i + 1) + ")");
    }
    if (extra > text.size() - i - 1) {
      return InvalidArgument("is not valid UTF-8 (truncated character at byte " +
                             std::to_string(i + 1) + ")");
    }
    for (size_t k = 1; k <= extra; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0u) != 0x80u) {
        return InvalidArgument("is not valid UTF-8 (byte " + std::to_string(i + k + 1) + ")");
      }
      code_point = (code_point << 6) | (next & 0x3fu);
    }
    const bool overlong =
        (extra == 2 && code_point < 0x800) || (extra == 3 && code_point < 0x10000);
    const bool surrogate = code_point >= 0xd800 && code_point <= 0xdfff;
    if (overlong || surrogate || code_point > 0x10ffff) {
      return InvalidArgument("is not valid UTF-8 (byte " + std::to_string(i + 1) + ")");
    }
    if (code_point < 0x20 || (code_point >= 0x7f && code_point <= 0x9f)) {
      return InvalidArgument("holds a control character (byte " + std::to_string(i + 1) + ")");
    }
    if (IsFormatCharacter(code_point)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(code_point));
      return InvalidArgument("holds the invisible formatting character " + std::string(hex) +
                             " (byte " + std::to_string(i + 1) +
                             "), which can make a name show other than it reads");
    }
    i += extra + 1;
    ++count;
  }
  return count;
}

bool IsPrintableStringChar(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return std::string_view(" '()+,-./:=?").find(c) != std::string_view::npos;
}

// CSBR §7.1.4.2: no attribute may hold only metadata such as ".", "-", " " or "n/a" (any Unicode
// space counts as " ").
bool IsMetadataOnly(std::string_view value) {
  const std::vector<uint32_t> code_points = CodePoints(value);
  if (std::all_of(code_points.begin(), code_points.end(), [](uint32_t c) {
        return c == '.' || c == '-' || c == '_' || IsUnicodeSpace(c);
      })) {
    return true;
  }
  for (std::string_view word : {"n/a", "absent", "not applicable"}) {
    if (EqualsIgnoringAsciiCase(value, word)) return true;
  }
  return false;
}

Status ValidateValue(const AttributeType& type, std::string_view value, size_t index) {
  const std::string where = Where(index, type.short_name);
  if (value.empty()) return InvalidArgument(where + " has an empty value");
  auto chars = CountCharacters(value);
  if (!chars.ok()) return InvalidArgument(where + ": the value " + chars.error().message());
  if (const std::vector<uint32_t> code_points = CodePoints(value);
      IsUnicodeSpace(code_points.front()) || IsUnicodeSpace(code_points.back())) {
    return InvalidArgument(where + ": the value starts or ends with a space; remove it");
  }
  if (IsMetadataOnly(value)) {
    return InvalidArgument(where + ": '" + QuoteForMessage(value) +
                           "' is a placeholder, not a value (CSBR 7.1.4.2); leave the attribute "
                           "out instead");
  }
  switch (type.rule) {
    case ValueRule::kUtf8:
      break;
    case ValueRule::kPrintable:
      for (char c : value) {
        if (!IsPrintableStringChar(c)) {
          return InvalidArgument(where + ": '" + QuoteForMessage(value) +
                                 "' has characters a PrintableString cannot hold; use letters, "
                                 "digits, spaces and '()+,-./:=?");
        }
      }
      break;
    case ValueRule::kCountryCode:
      if (value.size() != 2 || value[0] < 'A' || value[0] > 'Z' || value[1] < 'A' ||
          value[1] > 'Z') {
        return InvalidArgument(where + ": '" + QuoteForMessage(value) +
                               "' is not a country code; use the two upper-case letters of ISO "
                               "3166-1 alpha-2 (e.g. GB, DE, US), or XX");
      }
      break;
    case ValueRule::kBusinessCategory: {
      bool known = false;
      for (std::string_view category : kBusinessCategories) known = known || value == category;
      if (!known) {
        return InvalidArgument(where + ": '" + QuoteForMessage(value) +
                               "' is not a CSBR business category; use one of 'Private "
                               "Organization', 'Government Entity', 'Business Entity', "
                               "'Non-Commercial Entity'");
      }
      break;
    }
  }
  if (*chars > type.max_chars) {
    return InvalidArgument(where + " is " + std::to_string(*chars) + " characters long; at most " +
                           std::to_string(type.max_chars) + " are allowed");
  }
  return OkStatus();
}

}  // namespace

const AttributeType* FindAttributeType(std::string_view name) {
  for (const AttributeType& type : kAttributeTypes) {
    if (EqualsIgnoringAsciiCase(name, type.short_name) ||
        EqualsIgnoringAsciiCase(name, type.long_name)) {
      return &type;
    }
  }
  return nullptr;
}

Status ValidateDistinguishedName(const DistinguishedName& dn) {
  if (dn.attributes.empty()) {
    return InvalidArgument(
        "the subject is empty; it needs at least a CN, e.g. "
        "/CN=Example Code Signer/O=Example Ltd/C=GB");
  }
  if (dn.attributes.size() > kMaxSubjectAttributes) {
    return InvalidArgument("the subject has " + std::to_string(dn.attributes.size()) +
                           " attributes; at most " + std::to_string(kMaxSubjectAttributes) +
                           " are allowed");
  }
  std::array<bool, kAttributeTypes.size()> seen{};
  for (size_t i = 0; i < dn.attributes.size(); ++i) {
    const auto& [type_name, value] = dn.attributes[i];
    const AttributeType* type = FindAttributeType(type_name);
    if (type == nullptr || type->short_name != type_name) {
      return InvalidArgument("subject attribute " + std::to_string(i + 1) + " has type '" +
                             QuoteForMessage(type_name) + "', which is not one of " +
                             AcceptedTypeList());
    }
    SIGNET_TRY(ValidateValue(*type, value, i + 1));
    auto slot = static_cast<size_t>(type - kAttributeTypes.data());
    if (seen[slot] && !type->repeatable) {
      return InvalidArgument(Where(i + 1, type->short_name) + " repeats " +
                             std::string(type->short_name) + ", which may appear only once");
    }
    seen[slot] = true;
  }
  if (!seen[0]) {
    return InvalidArgument(
        "the subject has no CN (commonName); add /CN=<the subject's legal "
        "name> (CSBR 7.1.4.2)");
  }
  return OkStatus();
}

}  // namespace internal

std::string DistinguishedName::ToString() const {
  std::string out;
  for (const auto& [type, value] : attributes) {
    out += '/';
    out += type;
    out += '=';
    for (char c : value) {
      if (c == '/' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out;
}

Result<DistinguishedName> ParseSubject(std::string_view text) {
  using internal::QuoteForMessage;
  if (text.empty()) {
    return InvalidArgument("the subject is empty; write it as /CN=Name/O=Organization/C=GB");
  }
  if (text.size() > kMaxSubjectTextSize) {
    return InvalidArgument("the subject is " + std::to_string(text.size()) +
                           " bytes long; at most " + std::to_string(kMaxSubjectTextSize) +
                           " are accepted");
  }
  if (text[0] != '/') {
    return InvalidArgument("the subject must start with '/', as in /CN=Name/O=Organization/C=GB");
  }

  DistinguishedName dn;
  size_t pos = 1;  // just after a '/'
  for (size_t index = 1;; ++index) {
    if (index > kMaxSubjectAttributes) {
      return InvalidArgument("the subject has more than " + std::to_string(kMaxSubjectAttributes) +
                             " attributes");
    }
    // Type: up to the first '='. No escapes are allowed in a type.
    const size_t type_start = pos;
    while (pos < text.size() && text[pos] != '=' && text[pos] != '/') ++pos;
    const std::string_view type_text = text.substr(type_start, pos - type_start);
    if (pos >= text.size() || text[pos] != '=') {
      if (type_text.empty()) {
        return InvalidArgument("subject attribute " + std::to_string(index) +
                               " is empty (a doubled or trailing '/')");
      }
      return InvalidArgument("subject attribute " + std::to_string(index) + " ('" +
                             QuoteForMessage(type_text) + "') has no '='; write TYPE=value");
    }
    if (type_text.empty()) {
      return InvalidArgument("subject attribute " + std::to_string(index) +
                             " has no type before '='");
    }
    ++pos;  // '='

    const internal::AttributeType* type = internal::FindAttributeType(type_text);
    if (type == nullptr) {
      if (internal::EqualsIgnoringAsciiCase(type_text, "DC") ||
          internal::EqualsIgnoringAsciiCase(type_text, "domainComponent")) {
        return InvalidArgument("subject attribute " + std::to_string(index) +
                               ": DC (domainComponent) is prohibited in code-signing "
                               "certificates (CSBR 7.1.4.2)");
      }
      return InvalidArgument("subject attribute " + std::to_string(index) + " has unknown type '" +
                             QuoteForMessage(type_text) + "'; use one of " +
                             internal::AcceptedTypeList());
    }

    // Value: up to the next unescaped '/'.
    std::string value;
    while (pos < text.size() && text[pos] != '/') {
      if (text[pos] == '\\') {
        if (pos + 1 >= text.size()) {
          return InvalidArgument("subject attribute " + std::to_string(index) + " (" +
                                 std::string(type->short_name) +
                                 ") ends with a lone '\\'; write '\\\\' for a backslash");
        }
        ++pos;
      }
      value += text[pos];
      ++pos;
    }
    dn.attributes.emplace_back(std::string(type->short_name), std::move(value));

    if (pos >= text.size()) break;
    ++pos;  // '/'
  }
  SIGNET_TRY(internal::ValidateDistinguishedName(dn));
  return dn;
}

}  // namespace signet::pki
