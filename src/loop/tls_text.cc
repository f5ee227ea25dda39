// OpenSSL's errors and a certificate's fields as text that is safe to show a user.
#include "loop/tls_text.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace sb::tls {

std::string version_name(int v) {
  switch (v) {
    case SSL3_VERSION: return "SSL 3.0";
    case TLS1_VERSION: return "TLS 1.0";
    case TLS1_1_VERSION: return "TLS 1.1";
    case TLS1_2_VERSION: return "TLS 1.2";
    case TLS1_3_VERSION: return "TLS 1.3";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "version 0x%04x", v);
      return buf;
    }
  }
}

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxQuoted));
  for (char c : s) {
    if (out.size() >= kMaxQuoted) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

std::string name_text(const X509_NAME* name) {
  if (name == nullptr) return {};
  BIO* mem = BIO_new(BIO_s_mem());
  if (mem == nullptr) return {};
  // RFC 2253 flags escape control and non-ASCII bytes.
  X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(mem, &data);
  std::string s = n > 0 ? printable(std::string_view(data, static_cast<size_t>(n))) : "";
  BIO_free(mem);
  return s;
}

std::string time_text(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string cert_names(X509* cert) {
  std::string out;
  auto add = [&out](std::string_view s) {
    if (!out.empty()) out += ", ";
    out += printable(s);
  };
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && out.size() < kMaxQuoted; ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) {
        add(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                             static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName))));
      } else if (gn->type == GEN_IPADD) {
        int len = ASN1_STRING_length(gn->d.iPAddress);
        const unsigned char* p = ASN1_STRING_get0_data(gn->d.iPAddress);
        char buf[INET6_ADDRSTRLEN] = {};
        if (len == 4 || len == 16) {
          inet_ntop(len == 4 ? AF_INET : AF_INET6, p, buf, sizeof buf);
          add(buf);
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      add(cn);
    }
  }
  return out;
}

std::vector<QueuedError> drain_errors() {
  std::vector<QueuedError> out;
  const char* data = nullptr;
  int flags = 0;
  unsigned long code;
  while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    const char* reason = ERR_reason_error_string(code);
    std::string text = reason ? reason : "error " + std::to_string(ERR_GET_REASON(code));
    if ((flags & ERR_TXT_STRING) && data != nullptr && *data != '\0') {
      text += " (" + printable(data) + ")";
    }
    out.push_back(QueuedError{code, std::move(text)});
  }
  ERR_clear_error();
  return out;
}

std::string join_errors(const std::vector<QueuedError>& errs) {
  std::string s;
  for (const QueuedError& e : errs) {
    if (s.find(e.text) != std::string::npos) continue;
    if (!s.empty()) s += ": ";
    s += e.text;
  }
  return s;
}

Error config_error(std::string msg) {
  std::string detail = join_errors(drain_errors());
  if (!detail.empty()) msg += ": " + detail;
  return make_error(ErrDomain::kConfig, std::move(msg));
}

}  // namespace sb::tls
