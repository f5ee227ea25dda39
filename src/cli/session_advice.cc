// How a session's end or a TLS failure is worded for the user: its reason plus flag advice.
#include "cli/session_advice.h"

#include "throttle/pushback.h"

namespace sb {

namespace {

// Office 365's refusal of Basic authentication (at AUTH, or as a refused sender), Outlook.com's
// unauthenticated bulk sender: the provider's reason beats the generic advice.
ProviderReply provider_reason(const SessionEnd& e) {
  switch (e.cause) {
    case EndCause::kAuthFailed:
    case EndCause::kAuthTokenRefreshFailed:
    case EndCause::kSenderRefused: {
      const ProviderReply pr = recognise_provider_reply(e.code, e.text);
      return pr == ProviderReply::kDailyQuota ? ProviderReply::kNone : pr;
    }
    default: return ProviderReply::kNone;
  }
}

}  // namespace

std::string session_advice(const SessionEnd& e) {
  if (ProviderReply pr = provider_reason(e); pr != ProviderReply::kNone) {
    return provider_reply_advice(pr);
  }
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

std::string tls_advice(const TlsFailure& f) {
  switch (f.cause) {
    case TlsFailureCause::kHostnameMismatch:
    case TlsFailureCause::kCertExpired:
    case TlsFailureCause::kCertNotYetValid: return "or --tls-verify no";
    case TlsFailureCause::kUntrustedIssuer:
    case TlsFailureCause::kCertInvalid: return "give --ca-file, or --tls-verify no";
    case TlsFailureCause::kPlaintextGreeting:
    case TlsFailureCause::kNotTls: return "use --tls starttls";
    default: return "";
  }
}

std::string describe_tls_failure(const TlsFailure& f) {
  const std::string advice = tls_advice(f);
  if (advice.empty()) return tls_failure_text(f);
  switch (f.cause) {
    case TlsFailureCause::kHostnameMismatch: return f.text + " (" + f.hint + ", " + advice + ")";
    case TlsFailureCause::kPlaintextGreeting: return f.text + ": " + advice + " (" + f.hint + ")";
    case TlsFailureCause::kNotTls:
      return f.text + " (the server does not speak TLS here: implicit TLS is port 465; for port " +
             "587 or 25 " + advice + ")";
    default:
      return f.hint.empty() ? f.text + " (" + advice + ")"
                            : f.text + " (" + f.hint + "; " + advice + ")";
  }
}

}  // namespace sb
