#include "sms/gsm_encoding.h"

#include <array>

#include "base/utf8.h"

namespace sb {
namespace {

// GSM 03.38 default alphabet, indexed by septet (3GPP TS 23.038 §6.2.1). 0x1B is the escape
// to the extension table; its entry is never matched.
constexpr std::array<uint16_t, 128> kBasic = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7, 0x000A, 0x00D8,
    0x00F8, 0x000D, 0x00C5, 0x00E5, 0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
    0x03A3, 0x0398, 0x039E, 0xFFFF, 0x00C6, 0x00E6, 0x00DF, 0x00C9, 0x0020, 0x0021, 0x0022, 0x0023,
    0x00A4, 0x0025, 0x0026, 0x0027, 0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F,
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037, 0x0038, 0x0039, 0x003A, 0x003B,
    0x003C, 0x003D, 0x003E, 0x003F, 0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F, 0x0050, 0x0051, 0x0052, 0x0053,
    0x0054, 0x0055, 0x0056, 0x0057, 0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, 0x0068, 0x0069, 0x006A, 0x006B,
    0x006C, 0x006D, 0x006E, 0x006F, 0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,
};

struct Ext {
  uint8_t septet;
  uint16_t cp;
};
// The extension table: each costs two septets (0x1B, then this one).
constexpr std::array<Ext, 10> kExt = {{{0x0A, 0x000C},
                                       {0x14, 0x005E},
                                       {0x28, 0x007B},
                                       {0x29, 0x007D},
                                       {0x2F, 0x005C},
                                       {0x3C, 0x005B},
                                       {0x3D, 0x007E},
                                       {0x3E, 0x005D},
                                       {0x40, 0x007C},
                                       {0x65, 0x20AC}}};

// The septet for a code point: 0..127 basic, 0x100 | s extension, -1 none.
int gsm_septet(uint32_t cp) {
  for (size_t i = 0; i < kBasic.size(); ++i) {
    if (kBasic[i] == cp && i != 0x1B) return static_cast<int>(i);
  }
  for (const Ext& e : kExt) {
    if (e.cp == cp) return 0x100 | e.septet;
  }
  return -1;
}

// A lookup table for the code points below U+0100 (nearly every text), built once.
struct Latin1Map {
  std::array<int16_t, 256> m{};
  Latin1Map() {
    for (uint32_t cp = 0; cp < 256; ++cp) m[cp] = static_cast<int16_t>(gsm_septet(cp));
  }
};

int septet_for(uint32_t cp) {
  static const Latin1Map kMap;
  return cp < 256 ? kMap.m[cp] : gsm_septet(cp);
}

// Decodes UTF-8 into code points; an error names the first invalid byte.
Result<std::vector<uint32_t>> code_points(std::string_view s) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t n = utf8_seq(s, i, &cp);
    if (n == 0) {
      return make_error(ErrDomain::kInput,
                        "the text is not valid UTF-8 (at byte " + std::to_string(i) + ")");
    }
    cps.push_back(cp);
    i += n;
  }
  return cps;
}

constexpr size_t kMaxParts = 255;

void add_udh(std::string& part, uint8_t ref, size_t total, size_t seq) {
  part.push_back('\x05');  // UDH length
  part.push_back('\x00');  // IEI: concatenated short message, 8-bit reference
  part.push_back('\x03');
  part.push_back(static_cast<char>(ref));
  part.push_back(static_cast<char>(total));
  part.push_back(static_cast<char>(seq));
}

Error too_long(size_t parts) {
  return make_error(ErrDomain::kInput, "the text is too long for one SMS: " +
                                           std::to_string(parts) + " parts (at most 255)");
}

}  // namespace

uint8_t sms_data_coding(SmsCoding c) { return c == SmsCoding::kUcs2 ? 8 : 0; }

bool fits_gsm7(std::string_view utf8) {
  for (size_t i = 0; i < utf8.size();) {
    uint32_t cp;
    size_t n = utf8_seq(utf8, i, &cp);
    if (n == 0 || septet_for(cp) < 0) return false;
    i += n;
  }
  return true;
}

Result<EncodedSms> encode_sms(std::string_view utf8, uint8_t ref) {
  if (utf8.empty()) return make_error(ErrDomain::kInput, "the text is empty");
  auto cps = code_points(utf8);
  if (!cps) return cps.error();
  EncodedSms e;
  bool gsm = true;
  for (uint32_t cp : *cps) {
    int s = septet_for(cp);
    if (s < 0) {
      gsm = false;
      break;
    }
    e.units += s > 0xFF ? 2 : 1;
  }
  // Units (septets or UTF-16 code units) of each character, in order.
  std::vector<uint8_t> width;
  width.reserve(cps->size());
  size_t single, per_part;
  if (gsm) {
    e.coding = SmsCoding::kGsm7;
    for (uint32_t cp : *cps) width.push_back(septet_for(cp) > 0xFF ? 2 : 1);
    single = kGsmSingleSeptets;
    per_part = kGsmPartSeptets;
  } else {
    e.coding = SmsCoding::kUcs2;
    e.units = 0;
    for (uint32_t cp : *cps) {
      width.push_back(cp > 0xFFFF ? 2 : 1);
      e.units += width.back();
    }
    single = kUcs2SingleChars;
    per_part = kUcs2PartChars;
  }
  // Where each part starts (character index); a character never straddles two parts, so an
  // escape pair or a surrogate pair stays whole.
  std::vector<size_t> starts{0};
  if (e.units > single) {
    size_t used = 0;
    for (size_t i = 0; i < width.size(); ++i) {
      if (used + width[i] > per_part) {
        starts.push_back(i);
        used = 0;
        if (starts.size() > kMaxParts) return too_long(starts.size());
      }
      used += width[i];
    }
  }
  size_t total = starts.size();
  starts.push_back(cps->size());
  for (size_t p = 0; p < total; ++p) {
    std::string part;
    part.reserve(160);
    if (total > 1) add_udh(part, ref, total, p + 1);
    for (size_t i = starts[p]; i < starts[p + 1]; ++i) {
      uint32_t cp = (*cps)[i];
      if (gsm) {
        int s = septet_for(cp);
        if (s > 0xFF) part.push_back('\x1B');
        part.push_back(static_cast<char>(s & 0x7F));
      } else if (cp > 0xFFFF) {
        uint32_t v = cp - 0x10000;
        uint16_t hi = static_cast<uint16_t>(0xD800 + (v >> 10));
        uint16_t lo = static_cast<uint16_t>(0xDC00 + (v & 0x3FF));
        part.push_back(static_cast<char>(hi >> 8));
        part.push_back(static_cast<char>(hi & 0xFF));
        part.push_back(static_cast<char>(lo >> 8));
        part.push_back(static_cast<char>(lo & 0xFF));
      } else {
        part.push_back(static_cast<char>(cp >> 8));
        part.push_back(static_cast<char>(cp & 0xFF));
      }
    }
    e.parts.push_back(std::move(part));
  }
  return e;
}

namespace {

void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

constexpr uint32_t kReplacement = 0xFFFD;

// Text from a phone is untrusted: no control characters but line breaks and tabs.
uint32_t clean(uint32_t cp) {
  if ((cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t') || (cp >= 0x7F && cp < 0xA0)) {
    return kReplacement;
  }
  return cp;
}

}  // namespace

std::string decode_sms_text(std::string_view octets, uint8_t data_coding) {
  std::string out;
  auto byte = [&](size_t i) { return static_cast<unsigned char>(octets[i]); };
  if (data_coding == 0 || data_coding == 1) {
    for (size_t i = 0; i < octets.size(); ++i) {
      unsigned char c = byte(i);
      if (c >= 0x80) {
        put_utf8(out, clean(c));  // not a septet: the SMSC sent Latin-1
      } else if (c == 0x1B && i + 1 < octets.size()) {
        unsigned char n = byte(++i);
        uint32_t cp = kReplacement;
        for (const Ext& e : kExt) {
          if (e.septet == n) cp = e.cp;
        }
        put_utf8(out, clean(cp));
      } else if (c == 0x1B) {
        put_utf8(out, kReplacement);
      } else {
        put_utf8(out, clean(kBasic[c]));
      }
    }
  } else if (data_coding == 8) {
    for (size_t i = 0; i + 1 < octets.size(); i += 2) {
      uint32_t u = (byte(i) << 8) | byte(i + 1);
      if (u >= 0xD800 && u <= 0xDBFF && i + 3 < octets.size()) {
        uint32_t lo = (byte(i + 2) << 8) | byte(i + 3);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          put_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
          i += 2;
          continue;
        }
      }
      put_utf8(out, (u >= 0xD800 && u <= 0xDFFF) ? kReplacement : clean(u));
    }
  } else {
    for (size_t i = 0; i < octets.size(); ++i) put_utf8(out, clean(byte(i)));
  }
  return out;
}

}  // namespace sb
