// Push-back classification: the provider replies that mean slow down or quota, and look-alikes
// that must not.
#include "throttle/pushback.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sb
