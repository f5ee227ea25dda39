// The classification rules shipped with smtpblast (see classify.h for the format).
#include <string_view>

#include "returns/classify.h"

namespace sb {

// Where these rules come from:
// - STATUS patterns: the IANA registry "Simple Mail Transfer Protocol (SMTP) Enhanced Status
//   Codes" (RFC 3463, RFC 5248, and the codes added by RFC 3886, RFC 4954, RFC 7372 (5.7.20
//   to 5.7.26), RFC 7504 (5.1.10 null MX), RFC 8689) — what each subject/detail means.
// - REGEX lines: the wording the large receivers document or are widely seen to send in
//   their rejections (Postfix's and Exim's own "User unknown" / "Recipient address rejected"
//   replies, Microsoft 365's NDR codes such as 5.4.1 "Recipient address rejected: Access
//   denied", Gmail's "The email account that you tried to reach does not exist", "over quota"
//   4.2.2, and its 4.7.28/5.7.26 sender-authentication and rate messages, Yahoo's "This user
//   doesn't have a yahoo.com account" and its "[TS0x] temporarily deferred" rate replies).
//   They are tried first because many servers use a generic code (5.0.0, 5.5.0, 550 with no
//   enhanced code, 5.2.2 for a full mailbox that will empty again).
// A mailbox that is full or an account that is merely slow is soft; a sender-side problem
// (spam, blocklist, authentication, policy, message size) is "block": it says nothing about
// the address, so it never suppresses it.
constexpr std::string_view kDefaultRules = R"rules(# smtpblast default bounce rules
# CLASS CATEGORY            STATUS  REGEX
# Wording first: servers often send a generic code for a specific reason.
hard  invalid-recipient     *       recipient address rejected: access denied
soft  mailbox-full          *       mailbox (is )?full|over ?quota|quota exceeded|exceeded (the |their )?(storage|quota)|insufficient (system )?(storage|space)|out of storage
block spam-block            *       spam|blocklist|blacklist|black list|block list|spamhaus|barracuda|spamcop|\brbl\b|dnsbl|poor reputation|low reputation|bulk mail|junk mail
block authentication        *       \bspf\b|\bdkim\b|\bdmarc\b|not authenticated|authentication (is )?required|unauthenticated
block rate-limit            *       rate limit|too many (messages|connections|recipients)|temporarily (deferred|rate)|try (again )?later|throttl|\[ts0[0-9]\]|unusual rate
block message-too-large     *       (message|mail) (size|too (big|large))|exceeds (the )?(maximum|size)|too large
hard  invalid-recipient     *       user unknown|unknown user|no such (user|mailbox|recipient|address)|user (does not|doesn't) exist|mailbox (does not|doesn't) exist|(account|address|recipient|mailbox) (that you tried to reach )?does not exist|recipient not found|recipientnotfound|invalid (recipient|mailbox|address)|unknown (recipient|mailbox|local part|address)|not a valid (recipient|mailbox)|(doesn't|does not) have an? [a-z0-9.-]+ account|recipient address rejected|unrouteable address|mailbox unavailable|no mailbox here|bad destination mailbox|(user|address) not found|not our customer
hard  disabled              *       (account|mailbox) (has been |is )?(disabled|deactivated|suspended|inactive|locked|closed|expired)
block bad-sender            *       sender address rejected|sender (domain|address) (must exist|not found|unknown|rejected)|sender verify failed
block policy                *       (rejected|denied|blocked) (by|due to|for) (policy|content)|policy (violation|rejection)|not (authorized|permitted|allowed) to (send|relay)|relay(ing)? (access )?denied|relay not permitted
# Enhanced status codes (IANA registry), most specific first.
hard  invalid-recipient     5.1.0
hard  invalid-recipient     5.1.1
hard  bad-domain            5.1.2
hard  invalid-recipient     5.1.3
hard  invalid-recipient     5.1.6
block bad-sender            5.1.7
block bad-sender            5.1.8
hard  bad-domain            5.1.10
hard  disabled              5.2.1
soft  mailbox-full          5.2.2
block message-too-large     5.2.3
hard  invalid-recipient     5.2.4
block message-too-large     5.3.4
soft  network               5.4.1
hard  bad-domain            5.4.4
soft  expired               5.4.7
block content               5.6.*
block authentication        5.7.8
block authentication        5.7.20
block authentication        5.7.21
block authentication        5.7.22
block authentication        5.7.23
block authentication        5.7.24
block authentication        5.7.25
block authentication        5.7.26
block authentication        5.7.27
block policy                5.7.*
soft  mailbox-full          4.2.2
soft  rate-limit            4.7.28
block policy                4.7.*
soft  expired               4.4.7
soft  temporary             4.*.*
hard  other                 5.*.*
)rules";

std::string_view default_rules_text() { return kDefaultRules; }

}  // namespace sb
