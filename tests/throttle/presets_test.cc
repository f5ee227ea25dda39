// Presets: the table, SES region expansion, unknown names, filling unset flags only.
#include "throttle/presets.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(Presets, Office365AndGmail) {
  auto o = find_preset("Office365");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->host, "smtp.office365.com");
  EXPECT_EQ(o->port, 587);
  EXPECT_EQ(o->tls, "starttls");
  EXPECT_EQ(o->rate, "30/min");
  EXPECT_EQ(o->daily_limit, 10'000u);
  auto g = find_preset("gmail");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->host, "smtp.gmail.com");
  EXPECT_EQ(g->daily_limit, 2'000u);
  EXPECT_EQ(g->rate, "");
}

TEST(Presets, ProviderRules2026) {
  auto o = find_preset("office365");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->max_rcpts_per_msg, 1'000u);
  EXPECT_NE(o->notes.find("disabled by default from the end of December 2026"), std::string::npos);
  EXPECT_NE(o->notes.find("--oauth-token-cmd"), std::string::npos);
  auto g = find_preset("gmail");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->max_rcpts_per_msg, 100u);
  EXPECT_EQ(g->daily_messages, 2'000u);
  EXPECT_EQ(g->daily_limit, 2'000u);  // one recipient a message: both limits hold
}

TEST(Presets, Office365TenantLimit) {
  EXPECT_EQ(office365_tenant_limit(0), 0u);
  EXPECT_EQ(office365_tenant_limit(1), 10'000u);      // 500 + 9,500
  EXPECT_EQ(office365_tenant_limit(10), 12'005u);     // 500 x 5.0119 = 2,505.9
  EXPECT_EQ(office365_tenant_limit(1'000), 72'446u);  // 500 x 125.89 = 62,946.1
}

TEST(Presets, SesRegion) {
  auto s = find_preset("ses-eu-west-1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->host, "email-smtp.eu-west-1.amazonaws.com");
  EXPECT_EQ(s->rate, "14/s");
  EXPECT_EQ(s->name, "ses-eu-west-1");
  for (const char* bad : {"ses-", "ses-REGION", "ses-us_east", "ses--x", "ses-a.b"}) {
    EXPECT_FALSE(find_preset(bad).ok()) << bad;
  }
}

TEST(Presets, UnknownListsKnown) {
  auto r = find_preset("yahoo");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("\"yahoo\""), std::string::npos);
  EXPECT_NE(r.error().message.find("office365, gmail, ses-REGION"), std::string::npos);
}

TEST(Presets, EveryRateParsesAndBuildsAConfig) {
  EXPECT_GE(preset_table().size(), 3u);
  for (const Preset& p : preset_table()) {
    ThrottleFlags f;
    apply_preset(p, f);
    EXPECT_TRUE(make_throttle_config(f).ok()) << p.name;
    EXPECT_FALSE(p.notes.empty());
  }
}

TEST(Presets, ExplicitFlagsWin) {
  ThrottleFlags f{.rate = "10/min"};
  auto p = find_preset("office365");
  ASSERT_TRUE(p.ok());
  apply_preset(p.value(), f);
  EXPECT_EQ(f.rate, "10/min");
  EXPECT_EQ(f.daily_limit, 10'000u);
}

}  // namespace
}  // namespace sb
