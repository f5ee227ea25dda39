// Unit tests for the merge-value encoders (src/message/encode.h).
#include "message/encode.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb {
namespace {

TEST(EncodeDate, KnownInstants) {
  struct Case {
    int64_t t;
    const char* want;
  };
  const std::vector<Case> cases = {
      {0, "Thu, 01 Jan 1970 00:00:00 +0000"},
      {951782400, "Tue, 29 Feb 2000 00:00:00 +0000"},
      {1700000000, "Tue, 14 Nov 2023 22:13:20 +0000"},
      {1709251199, "Thu, 29 Feb 2024 23:59:59 +0000"},
      {4102444800, "Fri, 01 Jan 2100 00:00:00 +0000"},
      {-5, "Thu, 01 Jan 1970 00:00:00 +0000"},  // clamped
  };
  for (const auto& c : cases) {
    std::string out;
    append_rfc5322_date(out, c.t);
    EXPECT_EQ(out, c.want) << c.t;
    EXPECT_EQ(out.size(), 31u);
  }
}

TEST(EncodeBodyRaw, Table) {
  struct Case {
    std::string in;
    size_t col;
    bool dot_stuff;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"abc", 0, true, "abc"},
      {".abc", 0, true, "..abc"},
      {".abc", 3, true, ".abc"},
      {".abc", 0, false, ".abc"},
      {"a\n.b\r.c\r\n.d", 1, true, "a\r\n..b\r\n..c\r\n..d"},
      {std::string("a\0b", 3), 1, true, "ab"},
      {"\r\n\n\r", 1, true, "\r\n\r\n\r\n"},
  };
  for (const auto& c : cases) {
    std::string out;
    size_t col = c.col;
    bool eight = false;
    append_body_raw(out, c.in, c.dot_stuff, col, eight);
    EXPECT_EQ(out, c.want);
    EXPECT_LE(out.size(), value_bound(c.in.size()));
  }
}

TEST(EncodeQp, SoftBreaksAndSpecials) {
  std::string out;
  size_t col = 70;
  append_body_qp(out, "abcdefgh=", true, col);
  EXPECT_EQ(out, "abcde=\r\nfgh=3D");
  EXPECT_EQ(col, 6u);
  out.clear();
  col = 0;
  append_body_qp(out, "a \n.b\t", true, col);
  EXPECT_EQ(out, "a=20\r\n..b=09");
}

TEST(EncodeRfc2047, WordsAreBoundedAndFolded) {
  std::string out;
  size_t col = 9;
  std::string v(100, '\xC3');
  for (size_t i = 1; i < v.size(); i += 2) v[i] = '\xA9';  // 50 × "é"
  append_rfc2047(out, v, col);
  size_t words = 0;
  for (size_t p = 0; (p = out.find("=?UTF-8?B?", p)) != std::string::npos; ++words) {
    size_t e = out.find("?=", p + 10);
    EXPECT_LE(e + 2 - p, 75u);
    p = e + 2;
  }
  EXPECT_EQ(words, 3u);
  EXPECT_NE(out.find("?=\r\n =?UTF-8?B?"), std::string::npos);
  EXPECT_LE(out.size(), value_bound(v.size()));
}

TEST(EncodeDotStuff, InnerLinesOnly) {
  std::string out;
  dot_stuff_inner(".a\r\n.b\r\nc.\r\n.", out);
  EXPECT_EQ(out, ".a\r\n..b\r\nc.\r\n..");
}

}  // namespace
}  // namespace sb
