// `smtpblast unsub-verify`: checks a one-click unsubscribe token and says whom it names.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace sb {

struct UnsubVerifyArgs {
  std::string secret_file;
  std::string token;
  bool json = false;
};

// Registers the verb on `app`; returns it, for `if (*verb)` after parsing.
CLI::App* add_unsub_verify_command(CLI::App& app, UnsubVerifyArgs& a);

// 0 and the recipient and task on stdout for a good token; 1 and the reason on stderr for a
// bad or tampered one; 2 when the secret file cannot be used.
int run_unsub_verify(const UnsubVerifyArgs& a);

}  // namespace sb
