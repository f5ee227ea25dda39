// Table-driven checks of the import's address syntax rules and duplicate key.
#include "store/address.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

TEST(AddressTest, AcceptsOrdinaryAndInternationalAddresses) {
  const char* good[] = {
      "a@example.com",
      "first.last+tag@sub.example.co.uk",
      "o'brien@example.ie",
      "x!#$%&'*+-/=?^_`{|}~@example.com",
      "user@xn--bcher-kva.de",
      "jörg@bücher.de",  // non-ASCII local part (RFC 6531) and IDN domain
      "пользователь@пример.рф",
      "用户@例子.广告",
      "a@1.2",
      "a@my-host.example",
  };
  for (const char* a : good) EXPECT_EQ(address_problem(a), "") << a;
}

TEST(AddressTest, RejectsWithAReason) {
  struct Case {
    std::string addr;
    std::string reason;
  } cases[] = {
      {"", "empty address"},
      {"plainaddress", "no '@'"},
      {"a@b@example.com", "more than one '@' (quoted local parts are not supported)"},
      {"@example.com", "empty local part"},
      {"a@", "empty domain"},
      {"a b@example.com", "contains a space or control character"},
      {"a@exa\tmple.com", "contains a space or control character"},
      {"a\x7f@example.com", "contains a space or control character"},
      {".a@example.com", "local part starts or ends with '.'"},
      {"a.@example.com", "local part starts or ends with '.'"},
      {"a..b@example.com", "local part contains '..'"},
      {"a(b)@example.com", "local part contains '('"},
      {"\"a\"@example.com", "quoted local parts are not supported"},
      {"a@localhost", "domain has no dot"},
      {"a@example..com", "domain has an empty label"},
      {"a@example.com.", "domain has an empty label"},
      {"a@.example.com", "domain has an empty label"},
      {"a@-example.com", "domain label starts or ends with '-'"},
      {"a@example_x.com", "domain contains '_'"},
      {"a@[192.0.2.1]", "address literals ([...]) are not supported"},
      {"a\xff@example.com", "local part is not valid UTF-8"},
      {"a@ex\xc3.com", "domain is not valid UTF-8"},
      {"a@\xed\xa0\x80.com", "domain is not valid UTF-8"},  // UTF-16 surrogate
      {std::string(65, 'a') + "@example.com", "local part longer than 64 octets"},
      {"a@" + std::string(64, 'b') + ".com", "domain label longer than 63 octets"},
  };
  for (const auto& c : cases) EXPECT_EQ(address_problem(c.addr), c.reason) << c.addr;
}

TEST(AddressTest, LengthLimitIs254Octets) {
  // 64 + 1 + 189 = 254: labels of 63 octets joined by dots.
  std::string domain =
      std::string(63, 'd') + "." + std::string(63, 'e') + "." + std::string(61, 'f');
  std::string ok = std::string(64, 'l') + "@" + domain;
  ASSERT_EQ(ok.size(), 254u);
  EXPECT_EQ(address_problem(ok), "");
  std::string too_long = std::string(64, 'l') + "@g" + domain;
  ASSERT_EQ(too_long.size(), 255u);
  EXPECT_EQ(address_problem(too_long), "longer than 254 octets");
}

TEST(AddressTest, KeyLowercasesAsciiOnly) {
  EXPECT_EQ(address_key("John.Doe@Example.COM"), "john.doe@example.com");
  EXPECT_EQ(address_key("Jörg@Bücher.DE"), "jörg@bücher.de");
  EXPECT_EQ(address_key("Ä@x.de"), "Ä@x.de");  // no Unicode case folding
}

TEST(AddressTest, CapAndPrintable) {
  EXPECT_EQ(cap_utf8("héllo", 2), "h");  // does not split the two-octet é
  EXPECT_EQ(cap_utf8("héllo", 3), "hé");
  EXPECT_EQ(printable("a\r\nb", 10), "a\\r\\nb");  // escaped, as in every human output
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(trim_ascii(" \t a@b.c \r\n"), "a@b.c");
}

TEST(AddressTest, DestinationOfAnAddressOrAPhoneNumber) {
  EXPECT_EQ(destination_of("user@Example.COM"), "example.com");
  EXPECT_EQ(destination_of("+447400123123"), "+44");  // two digits
  EXPECT_EQ(destination_of("+12015550123"), "+1");    // NANP: one
  EXPECT_EQ(destination_of("+79161234567"), "+7");
  EXPECT_EQ(destination_of("+4915123456789"), "+49");
  EXPECT_EQ(destination_of("+353851234567"), "+353");  // Ireland: three
  EXPECT_EQ(destination_of("+4203123456"), "+420");    // 42x is not two digits
  EXPECT_EQ(destination_of("+27821234567"), "+27");
  EXPECT_EQ(destination_of("+212612345678"), "+212");
  EXPECT_EQ(destination_of("+8613812345678"), "+86");
  EXPECT_EQ(destination_of("+85291234567"), "+852");
  EXPECT_EQ(destination_of("++x@Example.com"), "example.com");  // an address first
  EXPECT_EQ(destination_of("+"), "");
}

}  // namespace
}  // namespace sb
