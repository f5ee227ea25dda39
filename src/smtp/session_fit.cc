// The session's per-command tables: which reply may answer which command, each command's
// name and how long its reply may take.
#include <iterator>

#include "smtp/enhanced_code.h"
#include "smtp/session.h"

namespace sb {

const char* Session::kind_name(Kind k) {
  // Indexed by Kind: one name per kind, checked at compile time.
  static constexpr const char* kNames[] = {"greeting",    "EHLO",        "HELO", "MAIL", "RCPT",
                                           "DATA",        "end of data", "BDAT", "RSET", "QUIT",
                                           "end of data", "STARTTLS",    "AUTH", "NOOP"};
  static_assert(std::size(kNames) == static_cast<size_t>(Kind::kCount),
                "one name per Session::Kind");
  return k < Kind::kCount ? kNames[static_cast<size_t>(k)] : "?";
}

// Which replies can answer which command (RFC 5321 §4.3.2, RFC 3030, RFC 3207, RFC 4954).
// Any 4xx/5xx is a refusal the command can get (servers use codes the RFC does not list),
// except for QUIT. A positive reply must be one the command can get: a 250 to DATA or a 354
// to BDAT LAST means the replies are out of step with the commands, and taking it as an
// answer could record a message as sent that the server never accepted. With enhanced status
// codes, a positive addressing code (2.1.x) cannot end a message, nor a content code (2.6.x)
// answer MAIL or RCPT.
Session::Fit Session::fit(Kind k, const Reply& r, bool enhanced) {
  const int c = r.code;
  const int cls = c / 100;
  // Only 221 closes: a 250 there is a reply to something else, come late.
  if (k == Kind::kQuit) return c == 221 ? Fit::kPositive : Fit::kWrong;
  // Every server should implement NOOP (RFC 5321 §4.5.1): a refusal there is another
  // command's, and so is an addressing code (checked below) -- except "command not
  // recognized" (500/502, x.5.x), which some stripped-down servers and filtering proxies say
  // to any command they do not know. That is an answer, though not a proof: pump() then
  // proves held replies by a quiet while, as without enhanced codes.
  if (k == Kind::kNoop && cls != 2) {
    const EnhancedCode e = enhanced ? enhanced_code(r.text) : EnhancedCode{};
    const bool unknown_command = (c == 500 || c == 502) && (e.subject == -1 || e.subject == 5);
    return unknown_command ? Fit::kNegative : Fit::kWrong;
  }
  if (cls == 4 || cls == 5) return Fit::kNegative;
  const EnhancedCode e = enhanced ? enhanced_code(r.text) : EnhancedCode{};
  const int subject = e.subject;
  if (e.cls >= 0 && e.cls != cls) return Fit::kWrong;
  switch (k) {
    case Kind::kGreeting:
    case Kind::kStartTls: return c == 220 ? Fit::kPositive : Fit::kWrong;
    case Kind::kAuth: return c == 235 || c == 334 ? Fit::kPositive : Fit::kWrong;
    case Kind::kData: return c == 354 ? Fit::kPositive : Fit::kWrong;
    case Kind::kRcpt:
      return (c == 250 || c == 251 || c == 252) && subject != 6 ? Fit::kPositive : Fit::kWrong;
    case Kind::kMail:
      return cls == 2 && c != 220 && c != 221 && subject != 6 ? Fit::kPositive : Fit::kWrong;
    case Kind::kDot:
    case Kind::kBdat:
    case Kind::kIgnore:
    case Kind::kNoop:
      return cls == 2 && c != 220 && c != 221 && subject != 1 ? Fit::kPositive : Fit::kWrong;
    default: return cls == 2 && c != 220 && c != 221 ? Fit::kPositive : Fit::kWrong;
  }
}

uint32_t Session::timeout_for(Kind k) const {
  const Timeouts& t = cfg_.timeouts;
  switch (k) {
    case Kind::kGreeting: return t.greeting;
    case Kind::kEhlo:
    case Kind::kHelo: return t.ehlo;
    case Kind::kMail:
    case Kind::kRset:
    case Kind::kNoop: return t.mail;
    case Kind::kRcpt: return t.rcpt;
    case Kind::kData: return t.data;
    case Kind::kDot:
    case Kind::kBdat:
    case Kind::kIgnore: return t.dot;
    case Kind::kQuit: return t.quit;
    case Kind::kStartTls:
    case Kind::kAuth: return t.ehlo;
    case Kind::kCount: break;
  }
  return t.mail;
}

}  // namespace sb
