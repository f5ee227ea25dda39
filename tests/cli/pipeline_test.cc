// --from checks, the run summary's wording and JSON, the account key.
#include <gtest/gtest.h>

#include "cli/pipeline.h"
#include "cli/run_report.h"

namespace sb {
namespace {

TEST(FromProblem, AddressesPassOthersAreNamed) {
  EXPECT_EQ(from_problem("news@example.com"), "");
  EXPECT_EQ(from_problem("postmaster@localhost"), "");  // a local relay's sender
  std::string why = from_problem("Sender <s@example.com>");
  EXPECT_NE(why.find("display name"), std::string::npos) << why;
  EXPECT_NE(why.find("--from s@example.com"), std::string::npos) << why;
  for (const char* bad : {"sender", "a@@b.com", "a b@c.com", "@x.com", "a@"}) {
    EXPECT_NE(from_problem(bad).find("not an address"), std::string::npos) << bad;
  }
}

TEST(RunReport, RecipientsAndAttemptsApart) {
  RunReport r;
  r.sent = 93;
  r.deferred = 7;
  r.deferred_attempts = 21;
  r.attempts = 121;
  r.seconds = 2;
  r.task.total = 100;
  std::string s = summary_text(r);
  EXPECT_NE(s.find("93 recipients sent, 0 failed, 7 deferred after 21 attempts; 121 delivery "
                   "attempts"),
            std::string::npos)
      << s;
  r.deferred = 1;
  r.deferred_attempts = 1;
  s = summary_text(r);
  EXPECT_NE(s.find("1 deferred after 1 attempt;"), std::string::npos) << s;
  nlohmann::json j = summary_json(r);
  EXPECT_EQ(j["run"]["recipients_deferred"], 1);
  EXPECT_EQ(j["run"]["attempts"], 121);
  EXPECT_TRUE(j["account"].is_null());
  EXPECT_TRUE(j["resume_at"].is_null());
}

TEST(RunReport, AccountKeyAndResumeTime) {
  EXPECT_EQ(account_key("U@X", "n@y", "SMTP.Office365.com", false), "u@x at smtp.office365.com");
  EXPECT_EQ(account_key("", "n@y", "relay.example", false), "n@y at relay.example");
  EXPECT_EQ(account_key("", "n@y", "", true), "n@y direct");
  EXPECT_EQ(iso_utc(0), "1970-01-01T00:00:00Z");
  RunReport r;
  r.exit_code = 3;
  r.stopped_by = "account-daily-limit";
  r.resume_at_ms = 86'400'000;
  r.account = "n@y at relay.example";
  r.account_limit = 10;
  r.account_used = 12;  // another task's reservation may have counted more
  nlohmann::json j = summary_json(r);
  EXPECT_EQ(j["resume_at"], "1970-01-02T00:00:00Z");
  EXPECT_EQ(j["account"]["remaining"], 0);
  EXPECT_FALSE(j["ok"].get<bool>());
}

}  // namespace
}  // namespace sb
