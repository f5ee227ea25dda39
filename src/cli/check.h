// The check verb (connect, TLS, AUTH, optional MAIL/RCPT probe) and the test verb (one message).
#pragma once

#include <string>

#include "cli/relay_options.h"

namespace sb {

// Prints the report; 0 when every step passed, 1 when a step failed (named on stdout).
int run_check(const RelaySetup& relay, const std::string& from, const std::string& probe_rcpt);

// Sends one message rendered from the template to `to`; prints the final reply. 0 on 2xx.
// `message`: DKIM signing and List-Unsubscribe, as send would add them (null: none).
struct MessageSetup;
int run_test_message(const RelaySetup& relay, const std::string& template_path,
                     const std::string& from, const std::string& to,
                     const MessageSetup* message = nullptr);

}  // namespace sb
