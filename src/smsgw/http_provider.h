// The HTTP SMS provider's two pure halves: one SMS -> an HTTP request (URL, auth, form or JSON
// body from the provider's field templates), and the HTTP answer -> the SMS's outcome.
#pragma once

#include <string>

#include "loop/http_client.h"
#include "smsgw/provider.h"

namespace sb {

struct SmsFields {
  std::string to;    // E.164 with '+'
  std::string from;  // the sender
  std::string text;  // UTF-8
};

// `secret`: basic auth's password, or the bearer token (also {{secret}} in a field).
HttpRequest build_http_sms(const HttpProviderConfig& cfg, const std::string& secret,
                           const SmsFields& sms);

enum class HttpSmsVerdict { kSent, kDeferred, kFailed };

struct HttpSmsOutcome {
  HttpSmsVerdict verdict = HttpSmsVerdict::kFailed;
  std::string message_id;
  std::string reason;      // for the recipient's last reply: "HTTP 400: {...}" (printable, capped)
  bool throttled = false;  // 429 or throttle_value: slow down
  bool fatal = false;      // 401/403: the credentials are wrong, the run must stop
};

// 2xx listed in success_status and the JSON test passing: sent. No answer, 429, 5xx, or the
// JSON test giving throttle_value: deferred (429 and throttle_value also slow the run down).
// Anything else: failed.
HttpSmsOutcome evaluate_http_sms(const HttpProviderConfig& cfg, const HttpResponse& resp);

// The value at a dotted JSON path ("messages.0.message-id") as text; "" when absent.
std::string json_path_text(const std::string& json, const std::string& path, bool* found);

}  // namespace sb
