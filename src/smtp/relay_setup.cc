#include "smtp/relay_setup.h"

#include <algorithm>

namespace sb {

void cap_timeouts(Timeouts& t, const RelaySetup& relay) {
  if (relay.greeting_timeout_ms != 0) t.greeting = std::min(t.greeting, relay.greeting_timeout_ms);
  const uint32_t ms = relay.command_timeout_ms;
  if (ms == 0) return;
  for (uint32_t* v : {&t.greeting, &t.ehlo, &t.mail, &t.rcpt, &t.data, &t.dot, &t.quit}) {
    if (*v > ms) *v = ms;
  }
}

PoolConfig pool_config_for(const RelaySetup& relay, const Timeouts& timeouts) {
  PoolConfig p;
  p.addrs = relay.addrs;
  p.name = relay.name;
  p.connect_timeout_ms = relay.connect_timeout_ms;
  p.tls = relay.tls_context;
  p.tls_host = relay.host;
  // A failed opportunistic handshake is followed by a plaintext reconnection to that host.
  if (relay.tls == TlsMode::kOpportunistic) p.plaintext_hosts = std::make_shared<PlaintextHosts>();
  p.session.helo = relay.helo;
  p.session.tls = relay.tls;
  p.session.credentials = relay.credentials.get();
  p.session.auth = relay.auth;
  p.session.allow_plaintext_auth = relay.allow_plaintext_auth;
  p.session.timeouts = timeouts;
  p.session.peer = relay.peer;
  p.session.describe_end = relay.describe_end;
  cap_timeouts(p.session.timeouts, relay);
  return p;
}

}  // namespace sb
