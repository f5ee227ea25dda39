// The text helpers: ASCII case, domain_of, base64 (RFC 4648 vectors) and read_file errors.
#include "base/text.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace sb {
namespace {

TEST(Text, LowerAsciiTouchesOnlyAsciiLetters) {
  EXPECT_EQ(lower_ascii("MiXeD-123_Z@"), "mixed-123_z@");
  EXPECT_EQ(lower_ascii("\xC3\x89T\xC3\x89"), "\xC3\x89t\xC3\x89");  // ÉTÉ: only the T
  std::string s = "ABC";
  lower_ascii_in_place(s);
  EXPECT_EQ(s, "abc");
  EXPECT_EQ(lower_ascii('['), '[');  // just after 'Z'
  EXPECT_EQ(lower_ascii('@'), '@');  // just before 'A'
}

TEST(Text, IsAscii) {
  EXPECT_TRUE(is_ascii(""));
  EXPECT_TRUE(is_ascii(std::string("a\0\x7F", 3)));
  EXPECT_FALSE(is_ascii("caf\xC3\xA9"));
  EXPECT_FALSE(is_ascii("\x80"));
  // Eight octets at a time, then the tail: a high octet anywhere is found.
  std::string long_ascii(37, 'a');
  EXPECT_TRUE(is_ascii(long_ascii));
  for (size_t i = 0; i < long_ascii.size(); ++i) {
    std::string t = long_ascii;
    t[i] = '\xff';
    EXPECT_FALSE(is_ascii(t)) << i;
  }
}

TEST(Text, Iequals) {
  EXPECT_TRUE(iequals("Content-Type", "content-TYPE"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("abc", "abcd"));
  EXPECT_FALSE(iequals("[", "{"));                // 0x5B and 0x7B differ by 32 but are not letters
  EXPECT_FALSE(iequals("\xC3\x89", "\xC3\xA9"));  // É and é: no case folding above ASCII
}

TEST(Text, Icontains) {
  EXPECT_TRUE(icontains("452 4.5.3 Daily Message QUOTA exceeded", "daily message quota"));
  EXPECT_TRUE(icontains("abc", ""));
  EXPECT_TRUE(icontains("ThrottLED", "throttl"));
  EXPECT_FALSE(icontains("", "a"));
  EXPECT_FALSE(icontains("permanent", "permanent error"));
  EXPECT_FALSE(icontains("[x]", "{X}"));
}

TEST(Text, DomainOf) {
  struct Case {
    const char* address;
    const char* domain;
  };
  const Case cases[] = {
      {"user@Example.COM", "example.com"},
      {"\"a@b\"@example.org", "example.org"},  // the last '@' counts
      {"no-at-sign", ""},
      {"", ""},
      {"user@", ""},
      {"@example.net", "example.net"},
      {"u@b\xC3\xBC\x63HER.de", "b\xC3\xBC\x63her.de"},  // UTF-8 kept, ASCII lowered
  };
  for (const Case& c : cases) EXPECT_EQ(domain_of(c.address), c.domain) << c.address;
}

TEST(Text, Base64Rfc4648Vectors) {
  struct Case {
    const char* plain;
    const char* encoded;
  };
  const Case cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(base64_encode(c.plain), c.encoded) << c.plain;
    auto d = base64_decode(c.encoded);
    ASSERT_TRUE(d.ok()) << c.encoded;
    EXPECT_EQ(*d, c.plain);
  }
  std::string out = "AUTH PLAIN ";
  append_base64(out, std::string("\0user\0pass", 10));
  EXPECT_EQ(out, "AUTH PLAIN AHVzZXIAcGFzcw==");
}

TEST(Text, Base64RoundTripsEveryByteAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); ++n) {
    std::string in = all.substr(all.size() - n);
    std::string enc = base64_encode(in);
    EXPECT_EQ(enc.size(), (n + 2) / 3 * 4);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec.ok()) << n;
    EXPECT_EQ(*dec, in) << n;
  }
}

TEST(Text, Base64DecodeRejectsWhatIsNotCanonical) {
  const char* bad[] = {
      "Zg",        // no padding
      "Zg=",       // short padding
      "Zm9v\r\n",  // line break
      "Zm 9",      // space
      "Z===",      // one character cannot carry a byte
      "=Zg=",      // padding first
      "Zg==Zm8=",  // padding in the middle
      "Zh==",      // non-zero leftover bits ("Zg==" is the one spelling of "f")
      "Zm9=",      // likewise for two bytes
      "Zm-_",      // base64url alphabet
  };
  for (const char* b : bad) {
    auto r = base64_decode(b);
    ASSERT_FALSE(r.ok()) << b;
    EXPECT_EQ(r.error().domain, ErrDomain::kInput);
    EXPECT_NE(r.error().message.find("invalid base64"), std::string::npos) << b;
  }
}

TEST(Text, ParseOctetsTakesSizesAsUsersWriteThem) {
  uint64_t v = 0;
  ASSERT_TRUE(parse_octets("2048", 1u << 30, v));
  EXPECT_EQ(v, 2048u);
  ASSERT_TRUE(parse_octets("256k", 1u << 30, v));
  EXPECT_EQ(v, 256u * 1024);
  ASSERT_TRUE(parse_octets("1M", 1u << 30, v));
  EXPECT_EQ(v, 1u << 20);
  ASSERT_TRUE(parse_octets("1.5mb", 1u << 30, v));
  EXPECT_EQ(v, 3u << 19);
  ASSERT_TRUE(parse_octets("1g", 1u << 30, v));
  EXPECT_EQ(v, 1u << 30);
  for (const char* bad : {"", "k", "0", "-1", "2x", "1g", " 1k", "1e3", "2 k"}) {
    EXPECT_FALSE(parse_octets(bad, 1u << 29, v)) << bad;
  }
}

class ReadFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sb_text_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::string dir_;
};

TEST_F(ReadFileTest, ReadsEveryByte) {
  std::string bytes("a\0b\r\n", 5);
  bytes += std::string(200'000, 'x');  // more than one read() buffer
  auto r = read_file(write("f", bytes));
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, bytes);
  auto empty = read_file(write("e", ""));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST_F(ReadFileTest, SaysWhyItCannotRead) {
  auto missing = read_file(dir_ + "/none");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().domain, ErrDomain::kInput);
  EXPECT_EQ(missing.error().message, "cannot read " + dir_ + "/none: no such file");

  auto dir = read_file(dir_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().message, "cannot read " + dir_ + ": it is a directory, not a file");

  auto under_file = read_file(write("plain", "x") + "/child");
  ASSERT_FALSE(under_file.ok());
  EXPECT_NE(under_file.error().message.find("cannot read "), std::string::npos);

  if (::geteuid() != 0) {  // root reads whatever the mode says
    std::string p = write("secret", "k");
    ASSERT_EQ(::chmod(p.c_str(), 0), 0);
    auto denied = read_file(p);
    ASSERT_FALSE(denied.ok());
    EXPECT_NE(denied.error().message.find("permission denied (owner uid"), std::string::npos)
        << denied.error().message;
  }
}

}  // namespace
}  // namespace sb
