// How a session's end or a TLS failure is worded for the user: its reason plus flag advice.
#pragma once

#include <string>

#include "loop/tls_failure.h"
#include "smtp/session.h"

namespace sb {

// The advice for an end, naming the flags that change the outcome ("give --tls none to send
// unencrypted"), or "" when no flag helps.
std::string session_advice(const SessionEnd& e);

// The whole message a user sees for an end: its text with the advice in parentheses, or for a
// few causes a sentence built around the flag. A SessionConfig::describe_end.
std::string describe_session_end(const SessionEnd& e);

// The flags that help with a failed TLS connection ("give --ca-file, or --tls-verify no"), or
// "" when none does.
std::string tls_advice(const TlsFailure& f);

// The whole message for a failed TLS connection: its text, the engine's hint and the advice.
// A TlsClientConfig::describe_failure.
std::string describe_tls_failure(const TlsFailure& f);

}  // namespace sb
