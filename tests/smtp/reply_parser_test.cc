// Reply parser: split replies, multiline, garbage, over-long lines.
#include "smtp/reply_parser.h"

#include <gtest/gtest.h>

#include <vector>

namespace sb {
namespace {

std::vector<Reply> parse_all(std::string_view in, ReplyParser& p) {
  std::vector<Reply> out;
  Reply r;
  while (p.next(in, r)) out.push_back(r);
  return out;
}

TEST(ReplyParser, SingleAndMultiline) {
  ReplyParser p;
  auto v = parse_all("220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n", p);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].code, 220);
  EXPECT_EQ(v[0].text, "mx ESMTP");
  EXPECT_EQ(v[1].code, 250);
  EXPECT_EQ(v[1].lines, 3u);
  EXPECT_EQ(v[1].text, "mx\nPIPELINING\nCHUNKING");
  EXPECT_FALSE(p.failed());
}

TEST(ReplyParser, SplitAtEveryByteGivesTheSameReplies) {
  const std::string all =
      "250-a\r\n250-b\r\n250 c\r\n354 go ahead\r\n550 5.1.1 no such user\r\n221\r\n";
  ReplyParser whole;
  auto expect = parse_all(all, whole);
  ASSERT_EQ(expect.size(), 4u);
  for (size_t cut = 1; cut < all.size(); ++cut) {
    ReplyParser p;
    auto a = parse_all(std::string_view(all).substr(0, cut), p);
    auto b = parse_all(std::string_view(all).substr(cut), p);
    a.insert(a.end(), b.begin(), b.end());
    ASSERT_EQ(a.size(), expect.size()) << "cut at " << cut;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].code, expect[i].code);
      EXPECT_EQ(a[i].text, expect[i].text);
    }
  }
  // Byte by byte.
  ReplyParser p;
  std::vector<Reply> got;
  for (char c : all) {
    std::string_view one(&c, 1);
    Reply r;
    while (p.next(one, r)) got.push_back(r);
  }
  ASSERT_EQ(got.size(), expect.size());
  EXPECT_EQ(got[3].code, 221);
  EXPECT_EQ(got[3].text, "");
}

TEST(ReplyParser, BareLfAccepted) {
  ReplyParser p;
  auto v = parse_all("250 ok\n", p);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].text, "ok");
}

struct BadCase {
  const char* input;
  const char* error_part;
};

TEST(ReplyParser, GarbageIsAnError) {
  const BadCase cases[] = {
      {"hello\r\n", "malformed"},   {"25\r\n", "malformed"},
      {"2500 x\r\n", "malformed"},  {"650 x\r\n", "malformed"},
      {"150 x\r\n", "malformed"},   {"250-a\r\n251 b\r\n", "code changed"},
      {"abc def\r\n", "malformed"},
  };
  for (const auto& c : cases) {
    ReplyParser p;
    auto v = parse_all(c.input, p);
    EXPECT_TRUE(v.empty()) << c.input;
    ASSERT_TRUE(p.failed()) << c.input;
    EXPECT_NE(p.error().find(c.error_part), std::string::npos) << p.error();
  }
}

TEST(ReplyParser, OverLongLineIsAnErrorEvenWhenSplit) {
  std::string line = "250 " + std::string(ReplyParser::kMaxLine + 10, 'x');
  ReplyParser p;
  std::string_view in = line;
  Reply r;
  while (!in.empty()) {
    std::string_view chunk = in.substr(0, 100);
    in.remove_prefix(chunk.size());
    EXPECT_FALSE(p.next(chunk, r));
  }
  EXPECT_TRUE(p.failed());
  EXPECT_NE(p.error().find("longer"), std::string::npos);
}

TEST(ReplyParser, TooManyLines) {
  std::string s;
  for (uint32_t i = 0; i < ReplyParser::kMaxLines + 1; ++i) s += "250-x\r\n";
  ReplyParser p;
  auto v = parse_all(s, p);
  EXPECT_TRUE(v.empty());
  EXPECT_TRUE(p.failed());
}

TEST(ReplyParser, TextIsSanitisedAndCapped) {
  ReplyParser p;
  std::string s = "550 bad\x01\x1b[31m caf\xc3\xa9 \xff";
  s += std::string(3000 > ReplyParser::kMaxLine ? 1000 : 10, 'y');
  s += "\r\n";
  auto v = parse_all(s, p);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].text.find('\x1b'), std::string::npos);
  EXPECT_EQ(v[0].text.find('\x01'), std::string::npos);
  EXPECT_NE(v[0].text.find("caf\xc3\xa9"), std::string::npos);  // valid UTF-8 kept
  EXPECT_EQ(v[0].text.find('\xff'), std::string::npos);
  EXPECT_LE(v[0].text.size(), ReplyParser::kMaxReplyText);
}

// Exactly what the octet-by-octet version gave: printable runs, UTF-8 kept whole or not at all
// at the cap, anything else '?', and never past the cap (also when `out` is not empty).
TEST(ReplyParser, AppendSanitisedRunsAndCap) {
  std::string out;
  append_sanitised(out, "ok \x01 caf\xc3\xa9\x7f!", 100);
  EXPECT_EQ(out, "ok ? caf\xc3\xa9?!");
  out = "ab";
  append_sanitised(out, "cdefgh", 5);
  EXPECT_EQ(out, "abcde");
  out.clear();
  append_sanitised(out, "abc\xc3\xa9", 4);  // the two octets of \xc3\xa9 do not fit: '?'
  EXPECT_EQ(out, "abc?");
  out.clear();
  append_sanitised(out, "x\xc3", 10);  // cut sequence
  EXPECT_EQ(out, "x?");
  out = "full";
  append_sanitised(out, "more", 4);
  EXPECT_EQ(out, "full");
}

TEST(ReplyParser, SummaryJoinsLines) {
  Reply r;
  r.code = 250;
  r.text = "a\nb";
  EXPECT_EQ(r.summary(), "250 a b");
}

}  // namespace
}  // namespace sb
