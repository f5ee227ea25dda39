// Tying a return to the recipient it is about: VERP return paths with an HMAC, Message-IDs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "returns/report.h"

namespace sb {

// The VERP token for recipient `id`: "<id>-<mac>", mac = the first 10 hex digits (40 bits)
// of HMAC-SHA256(key, "<task_key>.<id>"). Forging it means guessing 40 bits per recipient.
std::string verp_token(std::string_view key, std::string_view task_key, int64_t id);

// Expands "{{id}}" in a return-path template ("bounces+{{id}}@bounce.example.com") with the
// token. A template without exactly one "{{id}}", or not of the form local@domain, is a
// kConfig error (checked once, at start-up, by check_return_path).
Status check_return_path(std::string_view tmpl);
std::string expand_return_path(std::string_view tmpl, std::string_view key,
                               std::string_view task_key, int64_t id);

struct MatchKeys {
  std::string task_key;  // the task's Message-ID key (meta "task_key")
  std::string verp_key;  // the task's VERP HMAC key (meta "returns.verp_key"); empty: no VERP
};

enum class MatchMethod : unsigned char { kNone, kVerp, kMessageId, kEnvelopeId };
const char* match_method_name(MatchMethod m);

struct Match {
  MatchMethod method = MatchMethod::kNone;
  int64_t id = 0;
  // A VERP token was present but its MAC does not verify: a forged bounce (or another
  // task's). Never believed, whatever else the message says.
  bool forged = false;
  std::string why;  // for the user: how it matched, or why not
};

// Pure. Tries, in order: a VERP token in the addresses the return was delivered to (a token
// present and wrong is `forged` and ends the search); the original Message-ID
// "<task_key>.<id>@..." that smtpblast generates per recipient; the DSN's Original-Envelope-Id
// "<task_key>.<id>" (send's ENVID). The caller still checks that
// recipient `id` exists and, for a DSN, that one of its reported addresses is that recipient's.
Match match_return(const ReturnReport& r, const MatchKeys& keys);

}  // namespace sb
