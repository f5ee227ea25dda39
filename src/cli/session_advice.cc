// How a session's end is worded for the user: the protocol's reason plus command-line advice.
#include "cli/session_advice.h"

namespace sb {

std::string session_advice(const SessionEnd& e) {
  switch (e.cause) {
    case EndCause::kTlsAtOnce: return "use --tls implicit";
    case EndCause::kStartTlsNotOffered: return "give --tls none to send unencrypted";
    case EndCause::kStartTlsRefused:
      // A temporary refusal may pass on the next connection: no reason to drop TLS.
      return e.transient ? "" : "give --tls none to send unencrypted";
    case EndCause::kPlaintextAuthRefused:
      return "use --tls starttls or implicit; --allow-plaintext-auth overrides";
    case EndCause::kAuthFailed:
      return "check --user and the password or token; not retried, to avoid locking the "
             "account";
    case EndCause::kSenderRefused: return "check --from, and which senders the account may use";
    case EndCause::kTimeout:
    case EndCause::kConnectionLost:
      return e.implicit_tls_port ? "port 465 usually speaks TLS at once: use --tls implicit" : "";
    default: return "";
  }
}

std::string describe_session_end(const SessionEnd& e) {
  std::string advice = session_advice(e);
  if (advice.empty()) return session_end_text(e);
  switch (e.cause) {
    case EndCause::kTlsAtOnce:
      return "the server speaks TLS at once: " + advice +
             " (it sent a TLS record, not an SMTP greeting)";
    case EndCause::kStartTlsNotOffered:
      // STARTTLS is required only by --tls starttls (opportunistic goes on without it).
      return std::string("the ") + peer_role_name(e.peer) +
             " does not offer STARTTLS and --tls starttls requires it; nothing sent (" + advice +
             ")";
    default: return e.text + " (" + advice + ")";
  }
}

}  // namespace sb
