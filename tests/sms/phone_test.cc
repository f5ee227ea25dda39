#include "sms/phone.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace sb {
namespace {

std::string norm(std::string_view n, std::string_view cc) {
  auto r = normalize_e164(n, cc);
  return r.ok() ? r.value() : "error: " + r.error().message;
}

TEST(Phone, NationalNumbersTakeTheDefaultCountry) {
  EXPECT_EQ(norm("07911 123456", "GB"), "+447911123456");
  EXPECT_EQ(norm("030 1234567", "DE"), "+49301234567");
  EXPECT_EQ(norm("0151 23456789", "de"), "+4915123456789");
  EXPECT_EQ(norm("412 34 567", "NO"), "+4741234567");
  EXPECT_EQ(norm("06-12345678", "NL"), "+31612345678");
  EXPECT_EQ(norm("070-123 45 67", "SE"), "+46701234567");
  EXPECT_EQ(norm("(201) 555-0123", "US"), "+12015550123");
}

TEST(Phone, InternationalFormsIgnoreTheDefaultCountry) {
  EXPECT_EQ(norm("+44 7911 123456", "DE"), "+447911123456");
  EXPECT_EQ(norm("0044 7911 123456", "DE"), "+447911123456");
  EXPECT_EQ(norm("+4741234567", ""), "+4741234567");
  EXPECT_EQ(norm("  +46 70 123 45 67 ", "US"), "+46701234567");
}

TEST(Phone, TheSameNumberWrittenTwoWaysNormalisesOnce) {
  EXPECT_EQ(norm("07700900123", "GB"), norm("+44 (0)7700 900123", "GB"));
}

// Ofcom's drama range (07700 900000-900999) is reserved, never assigned: libphonenumber does
// not take it as a number. Tests that need a British mobile use 07911 123456.
TEST(Phone, TheDramaRangeIsNotANumber) {
  EXPECT_EQ(norm("07700 900123", "GB"), "error: not a valid number for GB");
}

TEST(Phone, InvalidNumbersSayWhy) {
  EXPECT_EQ(norm("", "GB"), "error: no phone number");
  EXPECT_EQ(norm("hello", "GB"), "error: not a phone number");
  EXPECT_EQ(norm("0791", "GB"), "error: too short (a local number?) for GB");
  EXPECT_EQ(norm("+44 1", "GB"), "error: too short");
  EXPECT_EQ(norm("07911 1234567", "GB"), "error: too long for GB");
  EXPECT_EQ(norm("07700 900123", ""),
            "error: no country: a national number without a default country");
  EXPECT_EQ(norm("+999 123456", "GB"), "error: unknown country calling code");
  std::string r = norm("0123", "DE");
  EXPECT_EQ(r.rfind("error: ", 0), 0u) << r;
  r = norm("+1 555 000 0000 000 0000", "US");
  EXPECT_EQ(r.rfind("error: ", 0), 0u) << r;
}

TEST(Phone, AnUnknownDefaultCountryIsAConfigError) {
  auto r = normalize_e164("07700 900123", "XX");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  EXPECT_NE(r.error().message.find("XX"), std::string::npos);
  EXPECT_TRUE(known_country("gb"));
  EXPECT_FALSE(known_country("XX"));
  EXPECT_FALSE(known_country("GBR"));
}

TEST(Phone, Digits) {
  EXPECT_EQ(e164_digits("+447700900123"), "447700900123");
  EXPECT_EQ(e164_digits("447700900123"), "447700900123");
}

TEST(Phone, SuppressionListsOfNumbers) {
  const std::string path = ::testing::TempDir() + "phone_list_test.txt";
  {
    std::ofstream f(path, std::ios::binary);
    f << "\xEF\xBB\xBF# opted out\r\n07911 123456\r\n\n  +49 30 1234567  \n0044 7911 123456";
  }
  auto r = read_phone_list(path, "GB");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "+447911123456\n+49301234567\n+447911123456\n");
  {
    std::ofstream f(path, std::ios::binary);
    f << "07911 123456\n# fine\nabc\n";
  }
  r = read_phone_list(path, "GB");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind(path + " line 3: 'abc' is not a phone number: ", 0), 0u)
      << r.error().message;
  EXPECT_FALSE(read_phone_list(path + ".missing", "GB").ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace sb
