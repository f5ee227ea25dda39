// Classifies an SMTP reply as push-back from the server: "slow down" or "sender quota spent".
#pragma once

#include <cstdint>
#include <string_view>

namespace sb {

enum class PushBack {
  kNone,      // not push-back (success, or an ordinary per-recipient failure)
  kSlowDown,  // defer the recipients and cut the rate
  kQuota,     // defer, cut, and pause sending until the provider's quota window allows again
};

const char* pushback_name(PushBack p);

// `text` is the reply text after the code (Reply::text); a leading enhanced status code
// ("4.7.0 ...") is read from it. Deliberately narrow: "452 4.2.2 mailbox over quota" is the
// recipient's problem, not ours, and must not slow the whole mailing.
PushBack classify_reply(int code, std::string_view text);

// The same with the enhanced code given separately ("" when the server sent none).
PushBack classify_reply(int code, std::string_view enhanced, std::string_view text);

// Provider replies (2026) that a retry cannot fix and that a user must act on; matched on the
// texts the providers document, so an ordinary refusal is never mistaken for one.
enum class ProviderReply : uint8_t {
  kNone,
  // Office 365: "535 5.7.139 Authentication unsuccessful, basic authentication is disabled",
  // "550 5.7.30 Basic authentication is not supported for Client Submission": a password no
  // longer logs in (Basic authentication is disabled by default from the end of December
  // 2026); every message would meet it, so the run stops.
  kBasicAuthDisabled,
  // Office 365: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled
  // for the Tenant/Mailbox": SMTP AUTH itself is off, whatever the credentials.
  kSmtpAuthDisabled,
  // Gmail / Workspace: "550 5.4.5 Daily user sending limit exceeded" (also SES's and Office
  // 365's quota replies): the account's daily quota is spent (a quota push-back, not a failure).
  kDailyQuota,
  // Outlook.com: "550 5.7.515 Access denied, sending domain ... does not meet the required
  // authentication level": bulk mail from a domain without aligned SPF/DKIM/DMARC.
  kBulkSenderUnauthenticated,
};

// `text` as in classify_reply (it may also be a whole "535 5.7.139 ..." summary line).
ProviderReply recognise_provider_reply(int code, std::string_view text);

// What the user changes, naming the flags: "use --oauth-token-cmd (AUTH XOAUTH2) ...";
// "" for kNone.
const char* provider_reply_advice(ProviderReply r);

}  // namespace sb
