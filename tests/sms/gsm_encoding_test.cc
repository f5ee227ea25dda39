#include "sms/gsm_encoding.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

EncodedSms enc(std::string_view s, uint8_t ref = 7) {
  auto r = encode_sms(s, ref);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : EncodedSms{};
}

std::string rep(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

TEST(GsmEncoding, PlainAsciiIsGsm7OneOctetPerSeptet) {
  EncodedSms e = enc("Hello @ 10:00!");
  EXPECT_EQ(e.coding, SmsCoding::kGsm7);
  ASSERT_EQ(e.parts.size(), 1u);
  EXPECT_EQ(e.parts[0], std::string("Hello \0 10:00!", 14));  // '@' is septet 0x00
  EXPECT_EQ(e.units, 14u);
  EXPECT_EQ(sms_data_coding(e.coding), 0);
}

TEST(GsmEncoding, EuroAndBracketsUseTheExtensionTable) {
  EncodedSms e = enc("5€ [x]");
  EXPECT_EQ(e.coding, SmsCoding::kGsm7);
  EXPECT_EQ(e.parts[0], "5\x1B\x65 \x1B\x3Cx\x1B\x3E");
  EXPECT_EQ(e.units, 9u);  // each extension character costs two septets
  for (const char* s : {"{", "}", "\\", "~", "^", "|", "€", "[", "]"}) {
    EXPECT_TRUE(fits_gsm7(s)) << s;
    EXPECT_EQ(enc(s).units, 2u) << s;
  }
}

TEST(GsmEncoding, AccentedLettersInGsmStayGsmOthersGoUcs2) {
  EXPECT_EQ(enc("café").coding, SmsCoding::kGsm7);  // é is in GSM 03.38
  EXPECT_EQ(enc("café").parts[0], "caf\x05");
  EXPECT_EQ(enc("Ærø Å ß Ñ ü ¿").coding, SmsCoding::kGsm7);
  EncodedSms l = enc("Łódź");  // ł is not
  EXPECT_EQ(l.coding, SmsCoding::kUcs2);
  EXPECT_EQ(l.parts[0], std::string("\x01\x41\x00\xF3\x00\x64\x01\x7A", 8));
  EXPECT_EQ(sms_data_coding(l.coding), 8);
  EXPECT_FALSE(fits_gsm7("ł"));
  EXPECT_FALSE(fits_gsm7("`"));  // ASCII, but not GSM
}

TEST(GsmEncoding, EmojiIsUcs2WithASurrogatePair) {
  EncodedSms e = enc("Hi 😀");
  EXPECT_EQ(e.coding, SmsCoding::kUcs2);
  EXPECT_EQ(e.units, 5u);  // H i space + two UTF-16 units
  EXPECT_EQ(e.parts[0], std::string("\0H\0i\0 \xD8\x3D\xDE\x00", 10));
}

TEST(GsmEncoding, Gsm7LimitIs160InOnePart) {
  EXPECT_EQ(enc(rep("a", 160)).parts.size(), 1u);
  EXPECT_EQ(enc(rep("a", 160)).parts[0].size(), 160u);
  EncodedSms two = enc(rep("a", 161), 0x2A);
  ASSERT_EQ(two.parts.size(), 2u);
  EXPECT_EQ(two.parts[0].substr(0, 6), std::string("\x05\x00\x03\x2A\x02\x01", 6));
  EXPECT_EQ(two.parts[1].substr(0, 6), std::string("\x05\x00\x03\x2A\x02\x02", 6));
  EXPECT_EQ(two.parts[0].size(), 6u + 153u);
  EXPECT_EQ(two.parts[1].size(), 6u + 8u);
  EXPECT_EQ(enc(rep("a", 306)).parts.size(), 2u);
  EXPECT_EQ(enc(rep("a", 307)).parts.size(), 3u);
}

TEST(GsmEncoding, ExtensionCharactersCountTwiceTowardsTheLimit) {
  EXPECT_EQ(enc(rep("€", 80)).parts.size(), 1u);  // 160 septets
  EXPECT_EQ(enc(rep("€", 80) + "a").parts.size(), 2u);
}

TEST(GsmEncoding, AnEscapePairIsNeverSplit) {
  // 152 plain septets then '€': the pair would straddle septets 153/154, so it opens part 2.
  EncodedSms e = enc(rep("a", 152) + "€" + rep("b", 10));
  ASSERT_EQ(e.parts.size(), 2u);
  EXPECT_EQ(e.parts[0].size(), 6u + 152u);
  EXPECT_EQ(e.parts[1].substr(6, 2), "\x1B\x65");
}

TEST(GsmEncoding, Ucs2LimitIs70InOnePart) {
  EXPECT_EQ(enc(rep("ł", 70)).parts.size(), 1u);
  EXPECT_EQ(enc(rep("ł", 70)).parts[0].size(), 140u);
  EncodedSms two = enc(rep("ł", 71));
  ASSERT_EQ(two.parts.size(), 2u);
  EXPECT_EQ(two.parts[0].size(), 6u + 134u);  // 67 characters
  EXPECT_EQ(two.parts[1].size(), 6u + 8u);
}

TEST(GsmEncoding, ASurrogatePairIsNeverSplit) {
  // 66 units then an emoji (2 units) then more: the emoji cannot end part 1.
  EncodedSms e = enc(rep("ł", 66) + "😀" + rep("ł", 10));
  ASSERT_EQ(e.parts.size(), 2u);
  EXPECT_EQ(e.parts[0].size(), 6u + 132u);
  EXPECT_EQ(e.parts[1].substr(6, 2), "\xD8\x3D");
  // 35 emoji = 70 units: still one part.
  EXPECT_EQ(enc(rep("😀", 35)).parts.size(), 1u);
  EXPECT_EQ(enc(rep("😀", 36)).parts.size(), 2u);
}

TEST(GsmEncoding, BadInputIsAnErrorNamingIt) {
  auto empty = encode_sms("", 0);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
  auto bad = encode_sms("ab\xC3", 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("UTF-8"), std::string::npos);
  auto huge = encode_sms(rep("a", 153 * 256), 0);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("255"), std::string::npos);
}

TEST(GsmEncoding, DecodesWhatPhonesSend) {
  EXPECT_EQ(decode_sms_text("STOP", 0), "STOP");
  EXPECT_EQ(decode_sms_text(std::string("\x00\x1B\x65\x05", 4), 0), "@€é");
  EXPECT_EQ(decode_sms_text(std::string("\x01\x41\xD8\x3D\xDE\x00", 6), 8), "Ł😀");
  EXPECT_EQ(decode_sms_text("caf\xE9", 3), "café");
  // Control characters from a phone never reach a terminal or the store.
  EXPECT_EQ(decode_sms_text(std::string("\0\x07", 2), 8), "\xEF\xBF\xBD");
  // A lone surrogate is replaced.
  EXPECT_EQ(decode_sms_text(std::string("\xD8\x3D", 2), 8), "\xEF\xBF\xBD");
}

TEST(GsmEncoding, RoundTripsEveryGsmCharacter) {
  std::string all =
      "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ "
      "!\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
      "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€";
  EncodedSms e = enc(all);
  EXPECT_EQ(e.coding, SmsCoding::kGsm7);
  std::string joined;
  for (const std::string& p : e.parts) joined += e.udh() ? p.substr(6) : p;
  EXPECT_EQ(decode_sms_text(joined, 0), all);
}

}  // namespace
}  // namespace sb
