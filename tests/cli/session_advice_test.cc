// The CLI's wording of session ends: each cause that has advice gets the flag a user needs, in
// the words the integration tests (and users' scripts) know.
#include "cli/session_advice.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

SessionEnd end_of(EndCause cause, std::string text, PeerRole peer = PeerRole::kRelay) {
  SessionEnd e;
  e.cause = cause;
  e.text = std::move(text);
  e.peer = peer;
  return e;
}

TEST(SessionAdvice, TlsAtOnceSaysUseImplicitTls) {
  SessionEnd e = end_of(EndCause::kTlsAtOnce,
                        "the server speaks TLS at once (it sent a TLS record, not an SMTP "
                        "greeting)");
  EXPECT_EQ(session_advice(e), "use --tls implicit");
  EXPECT_EQ(describe_session_end(e),
            "the server speaks TLS at once: use --tls implicit (it sent a TLS record, not an "
            "SMTP greeting)");
}

TEST(SessionAdvice, SilentPort465SaysUseImplicitTls) {
  for (EndCause cause : {EndCause::kTimeout, EndCause::kConnectionLost}) {
    SessionEnd e = end_of(cause, "timeout after 10 s waiting for the greeting");
    e.implicit_tls_port = true;
    EXPECT_EQ(describe_session_end(e),
              "timeout after 10 s waiting for the greeting (port 465 usually speaks TLS at once: "
              "use --tls implicit)");
    e.implicit_tls_port = false;
    EXPECT_EQ(describe_session_end(e), "timeout after 10 s waiting for the greeting");
  }
}

TEST(SessionAdvice, StartTlsNotOfferedNamesTheModeAndTheWayOut) {
  SessionEnd e = end_of(EndCause::kStartTlsNotOffered,
                        "the relay does not offer STARTTLS, and TLS is required; nothing sent");
  EXPECT_EQ(describe_session_end(e),
            "the relay does not offer STARTTLS and --tls starttls requires it; nothing sent "
            "(give --tls none to send unencrypted)");
  e.peer = PeerRole::kMailExchanger;
  EXPECT_EQ(describe_session_end(e),
            "the mail exchanger does not offer STARTTLS and --tls starttls requires it; nothing "
            "sent (give --tls none to send unencrypted)");
}

TEST(SessionAdvice, StartTlsRefusedPermanentlyOffersTlsNone) {
  SessionEnd e = end_of(EndCause::kStartTlsRefused, "the relay refused STARTTLS: 554 no TLS");
  EXPECT_EQ(describe_session_end(e),
            "the relay refused STARTTLS: 554 no TLS (give --tls none to send unencrypted)");
  // A temporary refusal may pass on the next connection: no advice to drop TLS.
  e.transient = true;
  e.text = "the relay refused STARTTLS: 454 try later";
  EXPECT_EQ(describe_session_end(e), "the relay refused STARTTLS: 454 try later");
}

TEST(SessionAdvice, PlaintextAuthRefusedNamesTheOverride) {
  SessionEnd e = end_of(EndCause::kPlaintextAuthRefused,
                        "refusing to send credentials over an unencrypted connection");
  EXPECT_EQ(describe_session_end(e),
            "refusing to send credentials over an unencrypted connection (use --tls starttls or "
            "implicit; --allow-plaintext-auth overrides)");
}

TEST(SessionAdvice, AuthFailedPointsAtTheCredentials) {
  SessionEnd e = end_of(EndCause::kAuthFailed, "authentication failed: 535 5.7.8 bad");
  EXPECT_EQ(describe_session_end(e),
            "authentication failed: 535 5.7.8 bad (check --user and the password or token; not "
            "retried, to avoid locking the account)");
}

TEST(SessionAdvice, Office365BasicAuthRefusalPointsAtOauth) {
  for (const char* text :
       {"authentication failed: 535 5.7.139 Authentication unsuccessful, basic authentication "
        "is disabled.",
        "authentication failed: 550 5.7.30 Basic authentication is not supported for Client "
        "Submission."}) {
    SessionEnd e = end_of(EndCause::kAuthFailed, text);
    e.code = text[23] == '5' && text[24] == '3' ? 535 : 550;
    const std::string d = describe_session_end(e);
    EXPECT_EQ(d.rfind(text, 0), 0u) << d;
    EXPECT_NE(d.find("use --oauth-token-cmd (AUTH XOAUTH2) instead of --password-file"),
              std::string::npos)
        << d;
    EXPECT_EQ(d.find("check --user"), std::string::npos) << d;
  }
  // The same refusal to MAIL FROM (the sender check) says the same.
  SessionEnd m = end_of(EndCause::kSenderRefused,
                        "the server refused the envelope sender <a@b.test>: 550 5.7.30 Basic "
                        "authentication is not supported for Client Submission.");
  m.code = 550;
  EXPECT_NE(describe_session_end(m).find("--oauth-token-cmd"), std::string::npos);
}

TEST(SessionAdvice, SenderRefusedPointsAtFrom) {
  SessionEnd e = end_of(EndCause::kSenderRefused,
                        "the server refused the envelope sender <a@b.test>: 550 5.7.1 no");
  EXPECT_EQ(describe_session_end(e),
            "the server refused the envelope sender <a@b.test>: 550 5.7.1 no (check --from, and "
            "which senders the account may use)");
}

TEST(SessionAdvice, CausesWithoutAdviceKeepTheSessionsWords) {
  for (EndCause c :
       {EndCause::kStartTlsInjection, EndCause::kTlsHandshakeFailed, EndCause::kAuthNotOffered,
        EndCause::kAuthNoMechanism, EndCause::kAuthTemporary, EndCause::kAuthTokenRefreshFailed,
        EndCause::kGreetingRefused, EndCause::kHeloRefused, EndCause::kRsetRefused,
        EndCause::kServerClosing, EndCause::kTimeout, EndCause::kConnectionLost,
        EndCause::kProtocolError, EndCause::kClosedByDriver}) {
    SessionEnd e = end_of(c, "what happened");
    EXPECT_EQ(session_advice(e), "") << end_cause_name(c);
    EXPECT_EQ(describe_session_end(e), "what happened") << end_cause_name(c);
  }
}

TEST(SessionAdvice, EveryCauseHasAName) {
  for (size_t i = 0; i < static_cast<size_t>(EndCause::kCount); ++i) {
    EXPECT_STRNE(end_cause_name(static_cast<EndCause>(i)), "?") << i;
  }
}

// --- TLS failures ----------------------------------------------------------------------------

TlsFailure tls(TlsFailureCause cause, std::string text, std::string hint = {}) {
  return TlsFailure{cause, std::move(text), std::move(hint)};
}

const char* const kVerify = "TLS handshake with mx.test failed: certificate verify failed: ";

TEST(TlsAdvice, HostnameMismatchOffersVerifyNo) {
  TlsFailure f = tls(TlsFailureCause::kHostnameMismatch,
                     std::string(kVerify) +
                         "hostname mismatch: the certificate is for a.test, "
                         "not mx.test",
                     "connect with a name the certificate lists");
  EXPECT_EQ(describe_tls_failure(f),
            std::string(kVerify) +
                "hostname mismatch: the certificate is for a.test, not mx.test "
                "(connect with a name the certificate lists, or --tls-verify "
                "no)");
}

TEST(TlsAdvice, ExpiredAndNotYetValidOfferVerifyNo) {
  TlsFailure f = tls(TlsFailureCause::kCertExpired, "X: certificate has expired",
                     "the server's operator must renew it");
  EXPECT_EQ(describe_tls_failure(f),
            "X: certificate has expired (the server's operator must renew it; or --tls-verify "
            "no)");
  f = tls(TlsFailureCause::kCertNotYetValid, "X: certificate is not yet valid",
          "check this machine's clock");
  EXPECT_EQ(describe_tls_failure(f),
            "X: certificate is not yet valid (check this machine's clock; or --tls-verify no)");
}

TEST(TlsAdvice, UntrustedIssuerOffersCaFile) {
  TlsFailure f = tls(TlsFailureCause::kUntrustedIssuer,
                     "X: is issued by Y, which is not a "
                     "trusted CA here");
  EXPECT_EQ(describe_tls_failure(f),
            "X: is issued by Y, which is not a trusted CA here (give --ca-file, or --tls-verify "
            "no)");
}

TEST(TlsAdvice, OtherVerifyFailureKeepsTheCertificateAndOffersCaFile) {
  TlsFailure f = tls(TlsFailureCause::kCertInvalid, "X: certificate revoked",
                     "the server's certificate, CN=mx.test");
  EXPECT_EQ(describe_tls_failure(f),
            "X: certificate revoked (the server's certificate, CN=mx.test; give --ca-file, or "
            "--tls-verify no)");
}

TEST(TlsAdvice, PlaintextGreetingSaysUseStartTls) {
  TlsFailure f = tls(TlsFailureCause::kPlaintextGreeting,
                     "the server sent a plaintext SMTP greeting", "it does not speak TLS at once");
  EXPECT_EQ(describe_tls_failure(f),
            "the server sent a plaintext SMTP greeting: use --tls starttls (it does not speak TLS "
            "at once)");
}

TEST(TlsAdvice, NotTlsNamesThePortsAndTheMode) {
  TlsFailure f = tls(TlsFailureCause::kNotTls, "X: wrong version number",
                     "the server does not speak TLS here: implicit TLS is port 465; for port 587 "
                     "or 25 use STARTTLS");
  EXPECT_EQ(describe_tls_failure(f),
            "X: wrong version number (the server does not speak TLS here: implicit TLS is port "
            "465; for port 587 or 25 use --tls starttls)");
}

TEST(TlsAdvice, CausesWithoutAdviceKeepTheEnginesWords) {
  for (TlsFailureCause c : {TlsFailureCause::kOther, TlsFailureCause::kProtocolVersion,
                            TlsFailureCause::kNoCommonCipher}) {
    EXPECT_EQ(tls_advice(tls(c, "x")), "") << tls_failure_cause_name(c);
    EXPECT_EQ(describe_tls_failure(tls(c, "what", "hint")), "what (hint)");
  }
}

}  // namespace
}  // namespace sb
