// SmsRunConfig: what an SMS run adds to RunConfig: the provider (SMPP or HTTP, secrets read),
// the sender, the list's phone column and default country.
#pragma once

#include <cstdint>
#include <string>

#include "sms/smpp_conn.h"
#include "smsgw/provider.h"

namespace sb {

struct SmsRunConfig {
  std::string provider;  // its name ([provider.NAME]): the task's identity and messages
  bool http = false;     // an HTTP API; else SMPP
  std::string sender;    // shown on the phone (--sender, else the provider's `from`)
  std::string country;   // default country of numbers without one (GB, DE ...)
  std::string phone_column = "phone";
  // The provider account --daily-limit counts across tasks in the quota store (as an e-mail
  // account is): type, address and account id, never a secret (sms_account_key()).
  std::string account;
  // SMPP: the SMSC's numeric address, TLS and the session (password read, sender set).
  SmppConnConfig smpp;
  uint32_t binds = 1;  // SMPP connections at once (--connections)
  // HTTP: the API and its secret (read once, before the run).
  HttpProviderConfig http_cfg;
  std::string secret;
  uint32_t http_in_flight = 10;  // requests under way at once
};

}  // namespace sb
