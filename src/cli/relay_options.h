// Relay options shared by send, check and test: address, TLS, credentials, authentication.
#pragma once

#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "engine/direct_lookup.h"
#include "smtp/relay_setup.h"
#include "smtp/session.h"

namespace sb {

class TlsContext;

struct RelayOptions {
  std::string relay;
  std::string tls;  // "" = by port: implicit for 465, else starttls
  std::string ca_file;
  std::string tls_verify = "yes";
  bool no_resumption = false;
  std::string user;
  std::string password_file;
  std::string oauth_token_file;
  std::string oauth_token_cmd;
  std::string auth = "auto";
  bool allow_plaintext_auth = false;
  std::string password_on_argv;  // only to refuse it with a clear message
  std::string helo;
  std::string connect_timeout = "30s";
  std::string command_timeout;  // "" = RFC 5321's per-command timeouts
  // --greeting-timeout ... --quit-timeout: "" = RFC 5321 §4.5.3.2's for that command.
  std::string greeting_timeout, ehlo_timeout, mail_timeout, rcpt_timeout, data_timeout, dot_timeout,
      quit_timeout;
};

void add_relay_options(CLI::App* cmd, RelayOptions& o, bool relay_required);

// Credentials read from a file, the environment or a token command; thread-safe.
class RelayCredentials : public Credentials {
 public:
  const std::string& user() const override { return user_; }
  std::string secret() const override;
  bool is_oauth() const override { return oauth_; }
  bool refresh(std::string* error) override;

  static Result<std::unique_ptr<RelayCredentials>> load(const RelayOptions& o);

 private:
  Status fetch();
  std::string user_;
  bool oauth_ = false;
  std::string token_file_;
  std::string token_cmd_;
  mutable std::mutex mu_;
  std::string secret_;
};

// Validates and prepares everything before anything is sent; errors name the flag.
Result<RelaySetup> prepare_relay(const RelayOptions& o);

// --direct: no relay address; the HELO name (required), opportunistic TLS by default
// (nothing verified), no credentials. Errors name the flag.
Result<RelaySetup> prepare_direct(const RelayOptions& o);

// --direct and the flags of its MX lookup, shared by send, check and test.
struct DirectOptions {
  bool direct = false;
  std::vector<std::string> dns_servers;  // --dns-server IP[:PORT] (repeatable)
  std::string dns_timeout = "5s";
  uint16_t mx_port = 25;
  bool ipv4_only = false;
  bool ipv6_only = false;
};

// Adds --direct (described by `direct_help`), --dns-server, --dns-timeout, --mx-port,
// --ipv4-only and --ipv6-only to `cmd`.
void add_direct_options(CLI::App* cmd, DirectOptions& o, const std::string& direct_help);

// Checks the flags add_direct_options added to `cmd` (after parsing): without --direct none of
// them, nor the flags in `also` (the command's own --direct-only flags), may be given.
// Errors name the flag.
Result<DirectLookup> prepare_direct_lookup(const DirectOptions& o, const CLI::App& cmd,
                                           const std::vector<std::string>& also = {});

// The per-command reply timeouts (--greeting-timeout ... --quit-timeout; RFC 5321's where not
// given). --command-timeout still caps them all (cap_timeouts). Errors name the flag.
Result<Timeouts> command_timeouts(const RelayOptions& o);

// "30s", "500ms", "2m", "1h" or plain seconds.
bool parse_duration_ms(const std::string& s, uint32_t& out);

}  // namespace sb
