// Push-back classification: the provider replies that mean slow down or quota, and look-alikes
// that must not.
#include "throttle/pushback.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

TEST(PushBack, Table) {
  struct Case {
    int code;
    const char* text;
    PushBack want;
  };
  const Case cases[] = {
      {250, "2.0.0 Ok: queued", PushBack::kNone},
      {421, "4.7.0 Too many connections, slow down", PushBack::kSlowDown},
      {421, "Service not available", PushBack::kSlowDown},
      {421, "4.7.28 Our system has detected an unusual rate of unsolicited mail",
       PushBack::kSlowDown},
      {450, "4.7.1 Rate limited, try later", PushBack::kSlowDown},
      {451, "4.7.500 Server busy. Please try again later", PushBack::kSlowDown},
      {454, "4.7.0 Temporary authentication failure", PushBack::kSlowDown},
      {454, "Throttling failure: Maximum sending rate exceeded.", PushBack::kSlowDown},
      {554,
       "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process",
       PushBack::kQuota},
      {550, "5.4.5 Daily user sending limit exceeded.", PushBack::kQuota},
      {550, "5.4.5 Daily user sending quota exceeded.", PushBack::kQuota},
      {454, "Throttling failure: Daily message quota exceeded.", PushBack::kQuota},
      // Look-alikes: recipient-side or unrelated temporary failures.
      {452, "4.2.2 The email account that you tried to reach is over quota", PushBack::kNone},
      {552, "5.2.2 Mailbox full / over quota", PushBack::kNone},
      {450, "4.2.0 Mailbox unavailable", PushBack::kNone},
      {451, "4.3.0 Local error in processing", PushBack::kNone},
      {451, "4.7.", PushBack::kNone},  // not an enhanced code
      {550, "5.1.1 No such user", PushBack::kNone},
      {354, "End data with <CR><LF>.<CR><LF>", PushBack::kNone},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(classify_reply(c.code, c.text), c.want) << c.code << " " << c.text;
  }
}

TEST(PushBack, EnhancedGivenSeparately) {
  EXPECT_EQ(classify_reply(450, "4.7.1", "Rate limited"), PushBack::kSlowDown);
  EXPECT_EQ(classify_reply(450, "", "Rate limited"), PushBack::kNone);
  EXPECT_STREQ(pushback_name(PushBack::kQuota), "quota");
}

// The providers' own reply texts (2026), as their documentation and bounces show them.
TEST(ProviderReply, RecognisedOnTheDocumentedTexts) {
  struct Case {
    int code;
    const char* text;
    ProviderReply want;
  };
  const Case cases[] = {
      // Office 365, Basic authentication refused (at AUTH, or later in the dialogue).
      {535, "5.7.139 Authentication unsuccessful, basic authentication is disabled. [AM0PR01CA]",
       ProviderReply::kBasicAuthDisabled},
      {550, "5.7.30 Basic authentication is not supported for Client Submission.",
       ProviderReply::kBasicAuthDisabled},
      {535,
       "authentication failed: 535 5.7.139 Authentication unsuccessful, basic "
       "authentication is disabled.",
       ProviderReply::kBasicAuthDisabled},
      // Office 365, SMTP AUTH off for the mailbox or tenant.
      {535,
       "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
       "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
       ProviderReply::kSmtpAuthDisabled},
      // Gmail / Workspace daily limit, and the other quota replies push-back knows.
      {550,
       "5.4.5 Daily user sending limit exceeded. For more information on Gmail sending "
       "limits go to https://support.google.com/a/answer/166852",
       ProviderReply::kDailyQuota},
      {550, "5.4.5 Daily sending quota exceeded.", ProviderReply::kDailyQuota},
      {554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
       ProviderReply::kDailyQuota},
      // Outlook.com, bulk mail from an unauthenticated domain.
      {550,
       "5.7.515 Access denied, sending domain [example.com] does not meet the required "
       "authentication level.",
       ProviderReply::kBulkSenderUnauthenticated},
      // Look-alikes that are the recipient's or the password's problem.
      {535, "5.7.3 Authentication unsuccessful", ProviderReply::kNone},
      {535, "5.7.8 Username and Password not accepted.", ProviderReply::kNone},
      {550, "5.7.1 Unauthenticated email is not accepted from this domain", ProviderReply::kNone},
      {550, "5.1.1 The email account that you tried to reach does not exist", ProviderReply::kNone},
      {452, "4.5.3 Too many recipients", ProviderReply::kNone},
      // A temporary reply is never one of these (Basic auth words in a 4xx are not a stop).
      {454, "4.7.0 basic authentication is disabled", ProviderReply::kNone},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(recognise_provider_reply(c.code, c.text), c.want) << c.code << " " << c.text;
  }
}

TEST(ProviderReply, AdviceNamesWhatToChange) {
  EXPECT_STREQ(provider_reply_advice(ProviderReply::kNone), "");
  const std::string basic = provider_reply_advice(ProviderReply::kBasicAuthDisabled);
  EXPECT_NE(basic.find("--oauth-token-cmd"), std::string::npos);
  EXPECT_NE(basic.find("end of December 2026"), std::string::npos);
  const std::string bulk = provider_reply_advice(ProviderReply::kBulkSenderUnauthenticated);
  for (const char* w : {"SPF", "DKIM", "DMARC", "smtpblast doctor"}) {
    EXPECT_NE(bulk.find(w), std::string::npos) << w;
  }
  EXPECT_NE(std::string(provider_reply_advice(ProviderReply::kDailyQuota)).find("deferred"),
            std::string::npos);
}

}  // namespace
}  // namespace sb
