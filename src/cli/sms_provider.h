// SMS providers: the [provider.NAME] tables of the config file (or of --provider-config FILE),
// checked key by key, with presets for widely used HTTP SMS APIs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "sms/smpp_conn.h"
#include "smsgw/provider.h"

namespace sb {

// The presets' names, for help and errors.
std::vector<std::string> http_preset_names();

// Every [provider.NAME] table of the given TOML files (lowest precedence first; a later file's
// table replaces an earlier one of the same name). An unknown key, a wrong type or a missing
// required key is an error naming the file, line and key (exit 2).
Result<std::map<std::string, ProviderConfig>> load_providers(const std::vector<std::string>& paths);

// Parses one document's text (tests): `file` names it in errors.
Result<std::map<std::string, ProviderConfig>> parse_providers(const std::string& text,
                                                              const std::string& file);

// The provider `name` from --provider-config FILE (when given) or the config files: an error
// lists the providers defined when there is none of that name.
Result<ProviderConfig> find_provider(const std::string& name, const std::string& provider_config);

// The provider account `sms send --daily-limit` counts in the quota store across tasks, as
// an e-mail account is counted: "smpp SYSTEM_ID at HOST:PORT", or "http ACCOUNT at URL" (the
// URL without its query, fragment or user info; "http at URL" without an account). Never a
// password or token.
std::string sms_account_key(const ProviderConfig& p);

// Everything SmppConn needs for provider `p` (`sms check`, `sms test`, `sms receipts`, and
// `sms send`'s SmsRunConfig::smpp): the password read now, `sender` as the source address,
// the SMSC's host looked up (blocking: call before the loop runs), and with tls = true a
// client TLS context that verifies as tls_verify / ca_file / tls_host say. Errors are kConfig
// naming the provider's key (exit 2).
Result<SmppConnConfig> smpp_conn_config(const ProviderConfig& p, const std::string& sender);

}  // namespace sb
