// Push-back classification: which replies mean "slow down" and which mean "quota spent".
#include "throttle/pushback.h"

#include <algorithm>
#include <cctype>

#include "base/text.h"

namespace sb {
namespace {

// "4.7.0" at the start of text: class digit, dot, 1-3 digits, dot, 1-3 digits.
std::string_view leading_enhanced(std::string_view text) {
  size_t i = 0;
  auto digits = [&](size_t max) {
    const size_t s = i;
    while (i < text.size() && i - s < max && text[i] >= '0' && text[i] <= '9') ++i;
    return i > s;
  };
  if (!digits(1) || i >= text.size() || text[i] != '.') return {};
  ++i;
  if (!digits(3) || i >= text.size() || text[i] != '.') return {};
  ++i;
  if (!digits(3)) return {};
  if (i < text.size() && text[i] != ' ' && text[i] != '\n') return {};
  return text.substr(0, i);
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

const char* pushback_name(PushBack p) {
  switch (p) {
    case PushBack::kNone: return "none";
    case PushBack::kSlowDown: return "slow-down";
    case PushBack::kQuota: return "quota";
  }
  return "?";
}

PushBack classify_reply(int code, std::string_view text) {
  return classify_reply(code, leading_enhanced(text), text);
}

PushBack classify_reply(int code, std::string_view enhanced, std::string_view text) {
  if (code < 400) return PushBack::kNone;
  // Provider quota replies, matched on the phrases the providers document:
  //   Office 365: 554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException
  //   Gmail:      550 5.4.5 Daily user sending limit (formerly "quota") exceeded
  //   SES:        454 Throttling failure: Daily message quota exceeded
  if (icontains(text, "SubmissionQuotaExceeded")) return PushBack::kQuota;
  if (enhanced == "5.4.5" &&
      (icontains(text, "sending limit") || icontains(text, "sending quota"))) {
    return PushBack::kQuota;
  }
  if (code == 454 && icontains(text, "daily message quota")) return PushBack::kQuota;

  if (code == 421) return PushBack::kSlowDown;
  if ((code == 450 || code == 451) && starts_with(enhanced, "4.7.")) return PushBack::kSlowDown;
  if (code == 454 && (enhanced == "4.7.0" || icontains(text, "throttl"))) {
    return PushBack::kSlowDown;
  }
  return PushBack::kNone;
}

ProviderReply recognise_provider_reply(int code, std::string_view text) {
  if (code < 500) return ProviderReply::kNone;
  if (icontains(text, "basic authentication is not supported") ||
      icontains(text, "basic authentication is disabled") ||
      (icontains(text, "5.7.30") && icontains(text, "basic auth"))) {
    return ProviderReply::kBasicAuthDisabled;
  }
  if (icontains(text, "SmtpClientAuthentication is disabled")) {
    return ProviderReply::kSmtpAuthDisabled;
  }
  if (icontains(text, "5.7.515")) return ProviderReply::kBulkSenderUnauthenticated;
  if (classify_reply(code, text) == PushBack::kQuota) return ProviderReply::kDailyQuota;
  return ProviderReply::kNone;
}

const char* provider_reply_advice(ProviderReply r) {
  switch (r) {
    case ProviderReply::kNone: return "";
    case ProviderReply::kBasicAuthDisabled:
      return "Office 365 no longer takes a password for SMTP AUTH (Basic authentication is "
             "disabled by default from the end of December 2026): use --oauth-token-cmd (AUTH "
             "XOAUTH2) instead of --password-file";
    case ProviderReply::kSmtpAuthDisabled:
      return "SMTP AUTH is disabled for this mailbox or tenant: an Exchange administrator must "
             "enable it (Set-CASMailbox -SmtpClientAuthenticationDisabled $false), then use "
             "--oauth-token-cmd (AUTH XOAUTH2)";
    case ProviderReply::kDailyQuota:
      return "the provider's daily sending limit for this account is spent: the recipients stay "
             "deferred; run again when the provider's 24 hours allow, and set --daily-limit (or "
             "--preset) so smtpblast stops first";
    case ProviderReply::kBulkSenderUnauthenticated:
      return "Outlook.com refuses bulk mail from a domain that does not authenticate: publish "
             "SPF, sign with DKIM (--dkim-key) and publish DMARC, aligned with the From: "
             "domain; `smtpblast doctor` checks all three";
  }
  return "";
}

}  // namespace sb
