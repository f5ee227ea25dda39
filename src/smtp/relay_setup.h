// RelaySetup: where and how a run connects (relay or direct), and the one PoolConfig built from it.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "smtp/pool.h"
#include "smtp/session.h"

namespace sb {

class TlsContext;

// Everything validated before anything is sent: addresses, TLS, credentials, timeouts. Built by
// the command line (prepare_relay / prepare_direct in cli/relay_options.h).
struct RelaySetup {
  std::vector<sockaddr_storage> addrs;
  std::string host;  // as given: the name TLS verifies and sends as SNI
  std::string name;  // "relay host:port" for messages
  TlsMode tls = TlsMode::kStartTls;
  std::shared_ptr<TlsContext> tls_context;
  std::unique_ptr<Credentials> credentials;
  AuthMech auth = AuthMech::kAuto;
  bool allow_plaintext_auth = false;
  uint32_t connect_timeout_ms = 30000;
  uint32_t command_timeout_ms = 0;   // 0: RFC 5321's per-command timeouts
  uint32_t greeting_timeout_ms = 0;  // 0: RFC 5321's; the connect timeout for port 465 without
                                     // implicit TLS (see prepare_relay)
  std::string helo;
  std::vector<std::string> warnings;
  PeerRole peer = PeerRole::kRelay;  // kMailExchanger for direct delivery
  // How a session's end is worded for the user (the CLI's advice); null: the session's own.
  EndDescriber describe_end = nullptr;
};

// No reply is waited for longer than relay.command_timeout_ms (0: leaves RFC 5321's); a
// relay's own greeting limit (port 465 without implicit TLS) applies too.
void cap_timeouts(Timeouts& t, const RelaySetup& relay);

// The pool settings every verb derives from a RelaySetup the same way: addresses, name, TLS
// (context, SNI name, the plaintext fallback of opportunistic TLS), HELO, credentials and
// authentication, and `timeouts` capped by the relay's limits. Per-verb settings (connections,
// messages per connection, pipelining, failover) are left for the caller.
PoolConfig pool_config_for(const RelaySetup& relay, const Timeouts& timeouts = Timeouts{});

}  // namespace sb
