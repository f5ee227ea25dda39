// Unit tests for address parsing, checking and phrase forms (src/message/address.h).
#include "message/address.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb {
namespace {

TEST(AddressParse, Table) {
  struct Case {
    std::string in;
    std::vector<ParsedMailbox> want;  // empty: an error is expected
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {"a@b.c", {{"", "a@b.c", false}}, ""},
      {"  a@b.c  ", {{"", "a@b.c", false}}, ""},
      {"<a@b.c>", {{"", "a@b.c", true}}, ""},
      {"Jane Doe <a@b.c>", {{"Jane Doe", "a@b.c", true}}, ""},
      {"Jane   Doe<a@b.c>", {{"Jane Doe", "a@b.c", true}}, ""},
      {"\"Smith, Jr.\" <a@b.c>", {{"Smith, Jr.", "a@b.c", true}}, ""},
      {"\"O\\\"Neil\" <a@b.c>", {{"O\"Neil", "a@b.c", true}}, ""},
      {"a@b.c (Jane)", {{"Jane", "a@b.c", false}}, ""},
      {"a@b.c, Bob <d@e.f>", {{"", "a@b.c", false}, {"Bob", "d@e.f", true}}, ""},
      {"\"x\"@b.c", {{"", "\"x\"@b.c", false}}, ""},
      {"Smith, Jr. <a@b.c>", {{"", "Smith", false}, {"Jr.", "a@b.c", true}}, ""},
      {"", {}, "no address"},
      {"a@b.c,", {}, "empty address"},
      {"\"open <a@b.c>", {}, "quoted string"},
      {"Name <a@b.c", {}, "not closed"},
      {"<a@b.c> trailing", {}, "after the address"},
      {"<a@b.c><d@e.f>", {}, "two addresses"},
      {"group: a@b.c;", {}, "group"},
      {"a@b.c)", {}, "stray"},
      {"x <a,b@c.d>", {}, "holds ','"},
  };
  for (const auto& c : cases) {
    std::vector<ParsedMailbox> got;
    std::string err = parse_mailbox_list(c.in, got);
    if (c.want.empty()) {
      EXPECT_NE(err.find(c.error_part), std::string::npos) << c.in << " -> " << err;
      EXPECT_FALSE(err.empty()) << c.in;
      continue;
    }
    ASSERT_EQ(err, "") << c.in;
    ASSERT_EQ(got.size(), c.want.size()) << c.in;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].name, c.want[i].name) << c.in;
      EXPECT_EQ(got[i].addr, c.want[i].addr) << c.in;
      EXPECT_EQ(got[i].angle, c.want[i].angle) << c.in;
    }
  }
}

TEST(AddressCheck, Table) {
  struct Case {
    std::string in;
    std::string error_part;  // "" when valid
    bool utf8_local = false;
    bool utf8_domain = false;
  };
  const std::vector<Case> cases = {
      {"a@b.c", ""},
      {"first.last+tag@sub.example.org", ""},
      {"o'neil@example.com", ""},
      {"\"john doe\"@example.com", ""},
      {"\"a\\\"b\"@example.com", ""},
      {"user@[192.0.2.1]", ""},
      {"user@localhost", ""},
      {"j\xC3\xB6rg@example.com", "", true, false},
      {"jorg@b\xC3\xBC" "cher.example", "", false, true},
      {"", "is empty"},
      {"abc", "no '@'"},
      {"@b.c", "nothing before"},
      {"a.@b.c", "ends with '.'"},
      {".a@b.c", "empty part"},
      {"a..b@c.d", "empty part"},
      {"a b@c.d", "' '"},
      {"a<b@c.d", "'<'"},
      {"a@", "no domain"},
      {"a@b..c", "empty label"},
      {"a@b.c.", "empty label"},
      {"a@b c", "' '"},
      {"a@b>c", "'>'"},
      {"\"open@b.c", "not closed"},
      {std::string(65, 'l') + "@b.c", "64 octets"},
      {"a@" + std::string(64, 'd') + ".c", "63 octets"},
      {std::string(60, 'l') + "@" + std::string(200, 'd'), "254 octets"},
      {"a@[1.2.3.4", "without ']'"},
      {std::string("a\x01") + "@b.c", "byte 0x01"},
  };
  for (const auto& c : cases) {
    AddrInfo info;
    std::string err = check_addr_spec(c.in, info);
    if (c.error_part.empty()) {
      EXPECT_EQ(err, "") << c.in;
      EXPECT_EQ(info.utf8_local, c.utf8_local) << c.in;
      EXPECT_EQ(info.utf8_domain, c.utf8_domain) << c.in;
    } else {
      EXPECT_NE(err.find(c.error_part), std::string::npos) << c.in << " -> " << err;
    }
  }
}

TEST(AddressAlabel, IdnDomains) {
  std::string out;
  ASSERT_TRUE(domain_to_alabel("b\xC3\xBC" "cher.example", out));
  EXPECT_EQ(out, "xn--bcher-kva.example");
  out.clear();
  EXPECT_FALSE(domain_to_alabel("a\xFF" "b.example", out));  // not UTF-8
}

TEST(AddressPhrase, FormsAndQuoting) {
  struct Case {
    std::string name;
    PhraseForm form;
  };
  const std::vector<Case> cases = {
      {"Jane Doe", PhraseForm::kAtoms},
      {"O'Neil", PhraseForm::kAtoms},  // "'" is atext
      {"Smith, Jr.", PhraseForm::kQuoted},
      {"O\"Neil", PhraseForm::kQuoted},
      {"Team <b>&</b>", PhraseForm::kQuoted},
      {"Back\\slash", PhraseForm::kQuoted},
      {"Paren (x)", PhraseForm::kQuoted},
      {"Dot.", PhraseForm::kQuoted},
      {"two  spaces", PhraseForm::kQuoted},
      {"tab\there", PhraseForm::kQuoted},
      {"J\xC3\xBCrgen", PhraseForm::kEncoded},
      {"=?UTF-8?B?SGk=?=", PhraseForm::kEncoded},
      {"bell\x07", PhraseForm::kEncoded},
      {std::string(901, 'x'), PhraseForm::kEncoded},
      {std::string(120, 'x'), PhraseForm::kAtoms},
  };
  for (const auto& c : cases) EXPECT_EQ(phrase_form(c.name), c.form) << c.name;
  std::string q;
  append_quoted(q, "a \"b\" \\c");
  EXPECT_EQ(q, "\"a \\\"b\\\" \\\\c\"");
}

}  // namespace
}  // namespace sb
