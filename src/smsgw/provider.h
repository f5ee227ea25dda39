// SMS providers as the channel uses them: SMPP (an SMSC) or an HTTP API, and where their
// secrets come from. Parsed from the config file by cli/sms_provider.cc.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace sb {

// Where a secret comes from: exactly one of a file (first line), an environment variable or a
// command (first line of its output). Never the value itself: config files are not for secrets.
struct SecretSource {
  std::string file;
  std::string env;
  std::string cmd;
  bool empty() const { return file.empty() && env.empty() && cmd.empty(); }
};

// Reads the secret now; `key` names the config key in errors ("provider.x.password_file").
Result<std::string> read_secret(const SecretSource& s, const std::string& key);

struct SmppProviderConfig {
  std::string host;
  uint16_t port = 2775;
  bool tls = false;  // implicit TLS from the first byte (SMPP has no STARTTLS)
  // With tls: verify the SMSC's certificate (system CA store plus ca_file) and its name
  // (tls_host, default host), as the e-mail side's --tls-verify / --ca-file do.
  bool tls_verify = true;
  std::string ca_file;
  std::string tls_host;
  std::string system_id;
  SecretSource password;
  std::string system_type;
  int source_ton = -1;  // -1: from the sender's form
  int source_npi = -1;
  uint32_t window = 10;  // submit_sm PDUs outstanding
  uint32_t tps = 0;      // messages per second the SMSC allows (0: no limit of its own)
  bool receipts = true;  // registered_delivery
};

enum class HttpBody { kForm, kJson };
enum class HttpAuth { kNone, kBasic, kBearer };

struct HttpProviderConfig {
  std::string preset;  // "" or a preset name (twilio, vonage)
  std::string url;     // may hold {{account}}
  std::string method = "POST";
  HttpAuth auth = HttpAuth::kNone;
  std::string user;     // basic auth user (also {{account}} unless account is set)
  std::string account;  // {{account}} in the URL (Twilio's account SID)
  SecretSource secret;  // basic auth's password, or the bearer token, or {{secret}}
  HttpBody body = HttpBody::kForm;
  // Form fields or JSON members (string values), in order; values are templates with {{to}},
  // {{to_digits}} (no '+'), {{from}}, {{text}}, {{account}}, {{secret}}.
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<int> success_status = {200, 201, 202};
  std::string success_path;   // JSON path ("messages.0.status"); "": the status code decides
  std::string success_value;  // the value it must have ("0"); "": present and not null/false
  // A value of success_path that means "slow down" (Vonage's status "1", Throttled, in an HTTP
  // 200): the message is deferred and the run's rate pushed back, as on a 429.
  std::string throttle_value;
  std::string message_id_path;  // JSON path of the provider's message id
  uint32_t timeout_ms = 30000;
  uint32_t tps = 0;
};

struct ProviderConfig {
  std::string name;
  std::string type;     // "smpp" or "http"
  std::string source;   // "FILE:LINE" of its table, for messages
  std::string sender;   // the default sender shown on the phone (`from = "..."`)
  std::string country;  // default country for numbers without one (`country = "GB"`)
  // The pace `sms send` keeps without --rate ("1/s"; "" for none): the table's `rate`, else
  // its `tps`, else an HTTP preset's documented default. rate_origin says which, for the line
  // `sms send` prints at its start.
  std::string rate;
  std::string rate_origin;
  SmppProviderConfig smpp;
  HttpProviderConfig http;
};

}  // namespace sb
