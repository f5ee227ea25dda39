// The check verb (connect, TLS, AUTH, optional MAIL/RCPT probe) and the test verb (one message),
// through the relay or, with --direct, to the recipient domain's mail exchangers.
#pragma once

#include <string>

#include "cli/relay_options.h"

namespace sb {

// Prints the report; 0 when every step passed, 1 when a step failed (named on stdout), 2 when
// the environment is unusable (no DNS resolver).
// `direct`: null for the relay in `relay`. Otherwise `domain`'s MX hosts are looked up (as send
// --direct does) and the first address that answers is used; `relay` then carries the HELO
// name, TLS and the connect timeout (prepare_direct).
// `timeouts`: the per-command reply timeouts (capped by the relay's, cap_timeouts).
int run_check(const RelaySetup& relay, const std::string& from, const std::string& probe_rcpt,
              const DirectLookup* direct = nullptr, const std::string& domain = {},
              const Timeouts& timeouts = Timeouts{});

// Sends one message rendered from the template to `to`; prints the final reply. 0 on 2xx.
// `message`: DKIM signing and List-Unsubscribe, as send would add them (null: none).
// `direct`: as for run_check, with the domain of `to`.
// `data`: the merge values (a task's or CSV's row, --field); null: only {{email}}. {{email}}
// is `to` (the message is addressed to who receives it). `transcript`: print the SMTP
// dialogue (secrets redacted) also when the message was sent.
struct MessageSetup;
struct TestData;
int run_test_message(const RelaySetup& relay, const std::string& template_path,
                     const std::string& from, const std::string& to,
                     const MessageSetup* message = nullptr, const DirectLookup* direct = nullptr,
                     const TestData* data = nullptr, bool transcript = false,
                     const Timeouts& timeouts = Timeouts{});

// `test --print`: the message as it would be sent (undotted, CRLF) on stdout; nothing is sent.
// {{email}} is `to`, else the row's address. 0, or 2 when it cannot be rendered.
int print_test_message(const std::string& template_path, const std::string& from,
                       const std::string& to, const MessageSetup* message, const TestData* data);

// The domain part of an address ("" when there is no '@' or nothing after it).
std::string address_domain(const std::string& address);

}  // namespace sb
