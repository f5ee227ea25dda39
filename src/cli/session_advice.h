// How a session's end is worded for the user: the protocol's reason plus command-line advice.
#pragma once

#include <string>

#include "smtp/session.h"

namespace sb {

// The advice for an end, naming the flags that change the outcome ("give --tls none to send
// unencrypted"), or "" when no flag helps.
std::string session_advice(const SessionEnd& e);

// The whole message a user sees for an end: its text with the advice in parentheses, or for a
// few causes a sentence built around the flag. A SessionConfig::describe_end.
std::string describe_session_end(const SessionEnd& e);

}  // namespace sb
