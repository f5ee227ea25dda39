// SmsTemplate: the SMS text with the e-mail template's placeholder syntax.
#include "message/sms_template.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

std::string render(std::string_view raw, const std::vector<std::string>& fields,
                   const std::vector<std::string>& values, std::string_view phone = "+4474") {
  auto t = SmsTemplate::compile(raw);
  EXPECT_TRUE(t.ok());
  EXPECT_TRUE(t->bind(fields).ok());
  std::string out;
  t->render(phone, values, out);
  return out;
}

TEST(SmsTemplate, MergesFieldsAndThePhone) {
  EXPECT_EQ(render("Hi {{name}}, {{phone}} wins {{ Code }}\n", {"Name", "code"}, {"Ann", "7"}),
            "Hi Ann, +4474 wins 7");
  EXPECT_EQ(render("a\r\nb\n\n", {}, {}), "a\nb\n");  // line ends normalised, the last dropped
  EXPECT_EQ(render("\xEF\xBB\xBFx {{u|url}}", {"u"}, {"a b&c"}), "x a%20b%26c");
  EXPECT_EQ(render("€ {{{n}}}", {"n"}, {"<b>"}), "€ <b>");  // never HTML-escaped
}

TEST(SmsTemplate, RefusesWhatCannotBeSent) {
  EXPECT_FALSE(SmsTemplate::compile("").ok());
  EXPECT_FALSE(SmsTemplate::compile("\n\n").ok());
  EXPECT_FALSE(SmsTemplate::compile("Hi {{name").ok());
  EXPECT_FALSE(SmsTemplate::compile(std::string_view("a\0b", 3)).ok());
  auto t = SmsTemplate::compile("Hi {{nme}}");
  ASSERT_TRUE(t.ok());
  auto b = t->bind({"name"});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("'nme'"), std::string::npos) << b.error().message;
  EXPECT_NE(b.error().message.find("phone"), std::string::npos) << b.error().message;
}

TEST(SmsTemplate, HashFollowsTheSource) {
  auto a = SmsTemplate::compile("x");
  auto b = SmsTemplate::compile("y");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->source_hash(), b->source_hash());
  EXPECT_EQ(a->source_hash().size(), 64u);
}

}  // namespace
}  // namespace sb
