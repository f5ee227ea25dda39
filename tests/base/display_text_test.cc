// display_escape() and capped_list(): untrusted text in human-readable output.
#include "base/display_text.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(DisplayEscapeTest, LineBreaksCannotForgeALine) {
  EXPECT_EQ(display_escape("a@x\r\n  fake@y  250  ok"), "a@x\\r\\n  fake@y  250  ok");
  EXPECT_EQ(display_escape("tab\there"), "tab\\there");
  EXPECT_EQ(display_escape(std::string("nul\0bell\a", 9)), "nul\\x00bell\\x07");
  EXPECT_EQ(display_escape("esc\x1b[2Jdel\x7f"), "esc\\x1B[2Jdel\\x7F");
}

TEST(DisplayEscapeTest, BackslashIsEscapedSoOursAreUnambiguous) {
  EXPECT_EQ(display_escape("a\\nb"), "a\\\\nb");
}

TEST(DisplayEscapeTest, Utf8KeptFormatControlsAndBadOctetsShown) {
  EXPECT_EQ(display_escape("jörg@bücher.de"), "jörg@bücher.de");
  EXPECT_EQ(display_escape("почта"), "почта");
  EXPECT_EQ(display_escape("a\xE2\x80\xAE"
                           "gpj.exe"),
            "a\\u{202E}gpj.exe");                              // RLO
  EXPECT_EQ(display_escape("\xC2\x85next"), "\\u{0085}next");  // NEL (C1)
  EXPECT_EQ(display_escape("caf\xE9"), "caf\\xE9");            // latin-1
  EXPECT_EQ(display_escape("\xE2\x80"), "\\xE2\\x80");         // truncated
}

TEST(CappedListTest, ShortListsAreWhole) {
  EXPECT_EQ(capped_list({"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(capped_list({"a", "b"}, "'"), "'a', 'b'");
  EXPECT_EQ(capped_list({}), "");
}

TEST(CappedListTest, LongListsSayHowManyMore) {
  std::vector<std::string> cols;
  for (int i = 0; i < 100000; ++i) cols.push_back("column" + std::to_string(i));
  std::string s = capped_list(cols);
  EXPECT_LT(s.size(), 400u) << s;
  EXPECT_EQ(s.substr(0, 25), "column0, column1, column2");
  EXPECT_NE(s.find("… and 99,990 more"), std::string::npos) << s;
}

TEST(CappedListTest, OctetBudgetAndLongItemsAndEscapes) {
  std::vector<std::string> big(5, std::string(1000, 'x'));
  std::string s = capped_list(big);
  EXPECT_LT(s.size(), 400u);
  EXPECT_NE(s.find("… and 1 more"), std::string::npos) << s;
  EXPECT_EQ(capped_list({"a\nb"}), "a\\nb");
}

TEST(GroupThousandsTest, Groups) {
  EXPECT_EQ(group_thousands(0), "0");
  EXPECT_EQ(group_thousands(999), "999");
  EXPECT_EQ(group_thousands(1000), "1,000");
  EXPECT_EQ(group_thousands(1234567), "1,234,567");
}

}  // namespace
}  // namespace sb
