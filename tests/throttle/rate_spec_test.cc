// Rate and duration parsing: accepted forms, exact reduction, errors that quote the text.
#include "throttle/rate_spec.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(RateSpec, AcceptedForms) {
  struct Case {
    const char* text;
    uint64_t count;
    uint64_t period_ms;
  };
  const Case cases[] = {
      {"30/min", 30, 60'000},
      {"10/s", 10, 1'000},
      {"2000/day", 2000, 86'400'000},
      {"1.5/s", 3, 2'000},
      {"100/h", 100, 3'600'000},
      {"5/2min", 5, 120'000},
      {" 30 / minute ", 30, 60'000},
      {"7/MIN", 7, 60'000},
      {"14/sec", 14, 1'000},
      {"10000/days", 10000, 86'400'000},
      {"0.5/s", 1, 2'000},
      {"1/second", 1, 1'000},
      {"3/hr", 3, 3'600'000},
      {"30/1m", 30, 60'000},
      {"0.001/s", 1, 1'000'000},
      {"2.50/min", 5, 120'000},
  };
  for (const Case& c : cases) {
    auto r = parse_rate(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().describe();
    EXPECT_EQ(r->count, c.count) << c.text;
    EXPECT_EQ(r->period_ms, c.period_ms) << c.text;
  }
}

TEST(RateSpec, ReductionKeepsTheRate) {
  // 30/min must not become 1 per 2 s: same rate, but a different window (and no room for a
  // burst). Only the decimal scale is reduced: 1.5/s is 3 per 2 s.
  auto r = parse_rate("30/min");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 30u);
  EXPECT_DOUBLE_EQ(r->per_second(), 0.5);
}

TEST(RateSpec, Errors) {
  const char* bad[] = {"",      "30",          "30/",          "/min",    "0/min",
                       "-1/s",  "1e3/s",       "30/fortnight", "1./s",    "30/0min",
                       "abc/s", "1.1234567/s", "2000000000/s", "30/min/s"};
  for (const char* t : bad) {
    auto r = parse_rate(t);
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_NE(r.error().message.find("\"" + std::string(t) + "\""), std::string::npos)
        << r.error().message;
    EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  }
}

TEST(RateSpec, Describe) {
  EXPECT_EQ(RateSpec({30, 60'000}).describe(), "30/min");
  EXPECT_EQ(RateSpec({3, 2'000}).describe(), "3/2s");
  EXPECT_EQ(RateSpec({2000, 86'400'000}).describe(), "2000/day");
  EXPECT_EQ(RateSpec({1, 1'500}).describe(), "1/1500ms");
}

TEST(Duration, AcceptedForms) {
  struct Case {
    const char* text;
    uint64_t ms;
  };
  const Case cases[] = {{"2m", 120'000},   {"90s", 90'000},      {"500ms", 500},
                        {"1h", 3'600'000}, {"1h30m", 5'400'000}, {"1d", 86'400'000},
                        {"2min", 120'000}, {" 5s ", 5'000},      {"0s", 0}};
  for (const Case& c : cases) {
    auto r = parse_duration_ms(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().describe();
    EXPECT_EQ(*r, c.ms) << c.text;
  }
}

TEST(Duration, Errors) {
  for (const char* t : {"", "120", "2x", "m", "1.5m", "-3s", "1h 30m", "400d"}) {
    auto r = parse_duration_ms(t);
    ASSERT_FALSE(r.ok()) << t;
    EXPECT_NE(r.error().message.find(t), std::string::npos) << r.error().message;
  }
  EXPECT_NE(parse_duration_ms("120").error().message.find("unit"), std::string::npos);
}

TEST(Duration, Describe) {
  EXPECT_EQ(describe_duration(120'000), "2m");
  EXPECT_EQ(describe_duration(5'400'000), "1h30m");
  EXPECT_EQ(describe_duration(1'500), "1500ms");
  EXPECT_EQ(describe_duration(0), "0s");
}

}  // namespace
}  // namespace sb
