// Classifies an SMTP reply as push-back from the server: "slow down" or "sender quota spent".
#pragma once

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

}  // namespace sb
