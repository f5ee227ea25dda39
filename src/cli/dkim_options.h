// DKIM and one-click unsubscribe flags: parsed, keys loaded and checked once, before sending.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace sb {

class CompiledTemplate;
class DkimSigner;
struct TemplateOptions;

// The flags as given. The Nth --dkim-key, --dkim-selector (and --dkim-domain, --dkim-algorithm,
// --dkim-canon when given more than once) belong together.
struct MessageOptions {
  std::vector<std::string> dkim_keys, dkim_domains, dkim_selectors, dkim_algorithms, dkim_canons;
  std::string unsubscribe_url;
  std::string unsubscribe_mailto;
  std::string unsubscribe_secret_file;
  std::string secret_on_argv;  // --unsubscribe-secret: only to refuse it with a clear message
};

// --dkim-* and --unsubscribe-* on a verb that renders the template (send, test).
void add_message_options(CLI::App* cmd, MessageOptions& o);
// Only the --dkim-* key flags (dkim-record).
void add_dkim_key_options(CLI::App* cmd, MessageOptions& o);

// Everything loaded: the signers (keys parsed once, shared by every worker), the secret.
struct MessageSetup {
  std::vector<std::shared_ptr<const DkimSigner>> dkim;
  std::string unsubscribe_url;
  std::string unsubscribe_mailto;
  std::string unsubscribe_secret;     // never printed, logged or stored in the task
  std::vector<std::string> warnings;  // key file modes, short RSA keys, ...
};

// Checks the groups of flags and loads the keys and the secret. kConfig errors name the flag
// or the file (exit code 2). Nothing is read from the network.
Result<MessageSetup> prepare_message_options(const MessageOptions& o);

// Copies the setup into the template options; `task_key` names the task in unsubscribe tokens.
void apply_message_setup(const MessageSetup& s, const std::string& task_key, TemplateOptions& t);

// Prints the setup's and the compiled template's warnings ("smtpblast: warning: …") on stderr.
void print_message_warnings(const MessageSetup& s, const CompiledTemplate& t);

// `smtpblast dkim-record`: the TXT record of each key, in zone-file syntax, strings split at
// 255 octets. 0, or 2 on a configuration error.
int run_dkim_record(const MessageOptions& o);

}  // namespace sb
