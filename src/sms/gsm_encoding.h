// SMS text encoding: GSM 03.38 7-bit (with its extension table) or UCS-2, split into parts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb {

enum class SmsCoding : uint8_t { kGsm7, kUcs2 };

// SMPP data_coding for a coding: 0 (the SMSC default alphabet, GSM 03.38) or 8 (UCS-2).
uint8_t sms_data_coding(SmsCoding c);

inline constexpr size_t kGsmSingleSeptets = 160;
inline constexpr size_t kGsmPartSeptets = 153;  // 160 less a 6-octet UDH (7 septets)
inline constexpr size_t kUcs2SingleChars = 70;
inline constexpr size_t kUcs2PartChars = 67;  // 140 octets less a 6-octet UDH, in UTF-16 units

struct EncodedSms {
  SmsCoding coding = SmsCoding::kGsm7;
  // The short_message octets of each part: GSM 03.38 septets one per octet (unpacked, as SMPP
  // carries data_coding 0) or UCS-2 big-endian; with several parts each starts with the
  // concatenation UDH (05 00 03 ref total seq).
  std::vector<std::string> parts;
  size_t units = 0;  // septets (an extension character counts 2) or UTF-16 code units
  bool udh() const { return parts.size() > 1; }
};

// Encodes UTF-8 text; `ref` is the concatenated message's 8-bit reference. An escape pair
// (extension character) and a surrogate pair (emoji) are never split across parts. Invalid
// UTF-8 or an empty text is an error naming the problem.
Result<EncodedSms> encode_sms(std::string_view utf8, uint8_t ref);

// True when every character of `utf8` has a GSM 03.38 form (basic or extension table).
bool fits_gsm7(std::string_view utf8);

// Decodes a received short message (a deliver_sm) to UTF-8: data_coding 0 and 1 as GSM 03.38
// septets one per octet (ASCII bytes that are not GSM map to themselves), 3 Latin-1, 8 UCS-2
// (big-endian, surrogates joined); others as Latin-1. Control bytes become U+FFFD.
std::string decode_sms_text(std::string_view octets, uint8_t data_coding);

}  // namespace sb
