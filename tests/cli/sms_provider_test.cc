// SMS providers: [provider.NAME] tables checked key by key (errors name file, line and key),
// presets, and the HTTP provider's request building and answer judging.
#include "cli/sms_provider.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "smsgw/http_provider.h"

namespace sb {
namespace {

ProviderConfig one(const std::string& toml, const std::string& name) {
  auto r = parse_providers(toml, "p.toml");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok() || r->count(name) == 0) return {};
  return r->at(name);
}

std::string error_of(const std::string& toml) {
  auto r = parse_providers(toml, "p.toml");
  return r.ok() ? std::string("(no error)") : r.error().message;
}

TEST(SmsProvider, SmppTable) {
  ProviderConfig p = one(R"(
[provider.smsc]
type = "smpp"
host = "127.0.0.1"
port = 2776
system_id = "sb"
password_env = "SMSC_PW"
window = 50
tps = 100
source_ton = 5
source_npi = 0
from = "Shop"
country = "GB"
)",
                         "smsc");
  EXPECT_EQ(p.type, "smpp");
  EXPECT_EQ(p.smpp.host, "127.0.0.1");
  EXPECT_EQ(p.smpp.port, 2776);
  EXPECT_EQ(p.smpp.system_id, "sb");
  EXPECT_EQ(p.smpp.password.env, "SMSC_PW");
  EXPECT_EQ(p.smpp.window, 50u);
  EXPECT_EQ(p.smpp.tps, 100u);
  EXPECT_EQ(p.smpp.source_ton, 5);
  EXPECT_EQ(p.smpp.source_npi, 0);
  EXPECT_EQ(p.sender, "Shop");
  EXPECT_EQ(p.country, "GB");
}

TEST(SmsProvider, SmppTlsKeysAndTheConnectionConfig) {
  ProviderConfig p = one(R"(
[provider.s]
type = "smpp"
host = "127.0.0.1"
port = 3550
system_id = "sb"
password_env = "SB_TEST_SMPP_PW"
tls = true
tls_verify = false
tls_host = "smsc.example.net"
)",
                         "s");
  EXPECT_TRUE(p.smpp.tls);
  EXPECT_FALSE(p.smpp.tls_verify);
  EXPECT_EQ(p.smpp.tls_host, "smsc.example.net");
  ::setenv("SB_TEST_SMPP_PW", "pw", 1);
  auto cc = smpp_conn_config(p, "Shop");
  ::unsetenv("SB_TEST_SMPP_PW");
  ASSERT_TRUE(cc.ok()) << cc.error().message;
  EXPECT_EQ(cc->address, "127.0.0.1:3550");
  EXPECT_TRUE(cc->tls);
  EXPECT_NE(cc->tls_ctx, nullptr);
  EXPECT_EQ(cc->tls_host, "smsc.example.net");
  EXPECT_EQ(cc->session.source_addr, "Shop");
  EXPECT_EQ(cc->session.password, "pw");
  // TLS options without tls = true: refused, naming the key.
  EXPECT_NE(error_of("[provider.s]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\n"
                     "ca_file = \"/x.pem\"\n")
                .find("key 'ca_file'"),
            std::string::npos);
}

TEST(SmsProvider, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(error_of("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\n"
                     "port = 70000\n"),
            "p.toml:5: key 'port' in [provider.x]: give a whole number from 1 to 65535");
  EXPECT_NE(error_of("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = "
                     "\"much-longer-than-15\"\n")
                .find("key 'system_id'"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"smpp\"\nsystem_id = \"s\"\n").find("key 'host'"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\nwindw = 3\n")
                .find("p.toml:5: key 'windw' in [provider.x]: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"fax\"\n").find("key 'type'"), std::string::npos);
  EXPECT_NE(error_of("[provider.x]\nhost = \"h\"\n").find("key 'type'"), std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"http\"\npreset = \"nope\"\n").find("key 'preset'"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"http\"\nurl = \"ftp://x\"\n").find("key 'url'"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"http\"\nurl = \"http://x\"\nfields = { to = "
                     "\"{{to}}\" }\n")
                .find("{{text}}"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"http\"\nurl = \"http://x\"\nauth = \"bearer\"\n"
                     "fields = { text = \"{{text}}\" }\n")
                .find("key 'token_file'"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\n"
                     "password_file = \"a\"\npassword_env = \"B\"\n")
                .find("give one of"),
            std::string::npos);
  EXPECT_NE(error_of("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\n"
                     "country = \"gb\"\n")
                .find("key 'country'"),
            std::string::npos);
}

TEST(SmsProvider, TwilioPresetAndOverrides) {
  ProviderConfig p = one(R"(
[provider.tw]
type = "http"
preset = "twilio"
account = "AC123"
password_file = "/run/tw"
url = "http://127.0.0.1:9/2010-04-01/Accounts/{{account}}/Messages.json"
)",
                         "tw");
  EXPECT_EQ(p.http.preset, "twilio");
  EXPECT_EQ(p.http.auth, HttpAuth::kBasic);
  EXPECT_EQ(p.http.user, "AC123");
  HttpRequest r =
      build_http_sms(p.http, "tok", SmsFields{"+447700900123", "+15005550006", "Hi & bye"});
  EXPECT_EQ(r.url, "http://127.0.0.1:9/2010-04-01/Accounts/AC123/Messages.json");
  EXPECT_EQ(r.user, "AC123");
  EXPECT_EQ(r.password, "tok");
  EXPECT_EQ(r.body, "To=%2B447700900123&From=%2B15005550006&Body=Hi%20%26%20bye");
  HttpResponse ok{201, R"({"sid":"SM42","status":"queued"})", ""};
  HttpSmsOutcome o = evaluate_http_sms(p.http, ok);
  EXPECT_EQ(o.verdict, HttpSmsVerdict::kSent);
  EXPECT_EQ(o.message_id, "SM42");
  HttpSmsOutcome bad = evaluate_http_sms(p.http, HttpResponse{401, "{\"code\":20003}", ""});
  EXPECT_EQ(bad.verdict, HttpSmsVerdict::kFailed);
  EXPECT_TRUE(bad.fatal);
  EXPECT_EQ(evaluate_http_sms(p.http, HttpResponse{429, "", ""}).verdict,
            HttpSmsVerdict::kDeferred);
  EXPECT_EQ(evaluate_http_sms(p.http, HttpResponse{0, "", "Connection refused"}).verdict,
            HttpSmsVerdict::kDeferred);
  EXPECT_EQ(evaluate_http_sms(p.http, HttpResponse{400, "{}", ""}).verdict,
            HttpSmsVerdict::kFailed);
}

TEST(SmsProvider, PresetRatesAndTheirOverrides) {
  const std::string tw = R"(
[provider.tw]
type = "http"
preset = "twilio"
account = "AC123"
password_file = "/run/tw"
)";
  ProviderConfig p = one(tw, "tw");
  EXPECT_EQ(p.rate, "1/s");  // a Twilio long code: 1 segment a second
  EXPECT_NE(p.rate_origin.find("preset twilio"), std::string::npos) << p.rate_origin;
  p = one(tw + "rate = \"600/min\"\n", "tw");
  EXPECT_EQ(p.rate, "600/min");
  EXPECT_EQ(p.rate_origin, "`rate` in [provider.tw]");
  p = one(tw + "tps = 3\n", "tw");
  EXPECT_EQ(p.rate, "3/s");
  EXPECT_EQ(p.rate_origin, "`tps` in [provider.tw]");
  p = one(R"(
[provider.vo]
type = "http"
preset = "vonage"
account = "key1"
password_env = "VO"
)",
          "vo");
  EXPECT_EQ(p.rate, "30/s");
  // A plain HTTP API has no documented default: none unless configured.
  p = one(R"(
[provider.own]
type = "http"
url = "https://sms.example.net/send"
fields = { to = "{{to}}", text = "{{text}}" }
)",
          "own");
  EXPECT_EQ(p.rate, "");
  p = one(R"(
[provider.smsc]
type = "smpp"
host = "127.0.0.1"
system_id = "sb"
rate = "5/s"
)",
          "smsc");
  EXPECT_EQ(p.rate, "5/s");
  EXPECT_NE(error_of(tw + "rate = \"fast\"\n").find("p.toml:7: key 'rate'"), std::string::npos)
      << error_of(tw + "rate = \"fast\"\n");
  EXPECT_NE(error_of(tw + "rate = \"1/s\"\ntps = 2\n").find("not both"), std::string::npos);
}

TEST(SmsProvider, AccountKeysNameTheAccountNeverTheSecret) {
  ProviderConfig p = one(R"(
[provider.smsc]
type = "smpp"
host = "SMPP.Example.NET"
port = 2776
system_id = "Shop"
password_env = "PW"
)",
                         "smsc");
  EXPECT_EQ(sms_account_key(p), "smpp Shop at smpp.example.net:2776");
  p = one(R"(
[provider.tw]
type = "http"
preset = "twilio"
account = "AC123"
password_file = "/run/tw"
)",
          "tw");
  EXPECT_EQ(sms_account_key(p),
            "http AC123 at https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json");
  p = one(R"(
[provider.own]
type = "http"
url = "https://u:secret@SMS.Example.net/v1/send?key=secret#x"
fields = { to = "{{to}}", text = "{{text}}" }
)",
          "own");
  EXPECT_EQ(sms_account_key(p), "http at https://sms.example.net/v1/send");
}

TEST(SmsProvider, VonagePresetJudgesTheJsonStatus) {
  ProviderConfig p = one(R"(
[provider.vo]
type = "http"
preset = "vonage"
account = "key1"
password_env = "VONAGE_SECRET"
)",
                         "vo");
  HttpRequest r = build_http_sms(p.http, "s3cr", SmsFields{"+447700900123", "Shop", "hé"});
  EXPECT_EQ(r.url, "https://rest.nexmo.com/sms/json");
  EXPECT_TRUE(r.user.empty());
  EXPECT_NE(r.body.find("api_secret=s3cr"), std::string::npos);
  EXPECT_NE(r.body.find("to=447700900123&"), std::string::npos);
  EXPECT_NE(r.body.find("text=h%C3%A9"), std::string::npos);
  auto sent = evaluate_http_sms(
      p.http, HttpResponse{200, R"({"messages":[{"status":"0","message-id":"0A1"}]})", ""});
  EXPECT_EQ(sent.verdict, HttpSmsVerdict::kSent);
  EXPECT_EQ(sent.message_id, "0A1");
  auto refused = evaluate_http_sms(
      p.http, HttpResponse{200, R"({"messages":[{"status":"6","error-text":"bad"}]})", ""});
  EXPECT_EQ(refused.verdict, HttpSmsVerdict::kFailed);
  EXPECT_NE(refused.reason.find("messages.0.status is \"6\""), std::string::npos);
  // Status 1, Throttled, comes with HTTP 200: deferred and slowing the run, not failed.
  auto throttled = evaluate_http_sms(
      p.http, HttpResponse{200, R"({"messages":[{"status":"1","error-text":"Throttled"}]})", ""});
  EXPECT_EQ(throttled.verdict, HttpSmsVerdict::kDeferred);
  EXPECT_TRUE(throttled.throttled);
  EXPECT_NE(throttled.reason.find("(throttled)"), std::string::npos);
  EXPECT_FALSE(refused.throttled);
}

TEST(SmsProvider, ThrottleValueIsAValueOfTheSuccessPath) {
  ProviderConfig p = one(R"(
[provider.gen]
type = "http"
url = "http://127.0.0.1:9/send"
fields = { to = "{{to}}", text = "{{text}}" }
success_path = "state"
success_value = "queued"
throttle_value = "busy"
)",
                         "gen");
  EXPECT_EQ(evaluate_http_sms(p.http, HttpResponse{200, R"({"state":"busy"})", ""}).verdict,
            HttpSmsVerdict::kDeferred);
  EXPECT_EQ(evaluate_http_sms(p.http, HttpResponse{200, R"({"state":"no"})", ""}).verdict,
            HttpSmsVerdict::kFailed);
  const std::string e = error_of(R"(
[provider.gen]
type = "http"
url = "http://127.0.0.1:9/send"
fields = { to = "{{to}}", text = "{{text}}" }
throttle_value = "busy"
)");
  EXPECT_NE(e.find("p.toml:"), std::string::npos) << e;
  EXPECT_NE(e.find("'throttle_value'"), std::string::npos) << e;
  EXPECT_NE(e.find("needs success_path"), std::string::npos) << e;
}

TEST(SmsProvider, JsonBodyAndBearer) {
  ProviderConfig p = one(R"(
[provider.gen]
type = "http"
url = "http://127.0.0.1:9/send"
auth = "bearer"
token_cmd = "echo t"
body = "json"
fields = { to = "{{to}}", text = "{{text}}", tag = "x{{unknown}}" }
success_status = 200
message_id_path = "id"
)",
                         "gen");
  HttpRequest r = build_http_sms(p.http, "t", SmsFields{"+4915112345678", "", "a\"b"});
  EXPECT_EQ(r.bearer, "t");
  EXPECT_EQ(r.body, R"({"tag":"x{{unknown}}","text":"a\"b","to":"+4915112345678"})");
  EXPECT_EQ(evaluate_http_sms(p.http, HttpResponse{201, "{}", ""}).verdict,
            HttpSmsVerdict::kFailed);
}

TEST(SmsProvider, JsonPath) {
  bool found = false;
  EXPECT_EQ(json_path_text(R"({"a":[{"b":7}]})", "a.0.b", &found), "7");
  EXPECT_TRUE(found);
  EXPECT_EQ(json_path_text(R"({"a":[]})", "a.0.b", &found), "");
  EXPECT_FALSE(found);
  EXPECT_EQ(json_path_text("not json", "a", &found), "");
  EXPECT_FALSE(found);
}

TEST(SmsProvider, SecretSources) {
  ::setenv("SB_TEST_SMS_SECRET", "from-env", 1);
  auto e = read_secret(SecretSource{"", "SB_TEST_SMS_SECRET", ""}, "k");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, "from-env");
  auto c = read_secret(SecretSource{"", "", "printf 'tok\\nmore'"}, "k");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "tok");
  auto missing = read_secret(SecretSource{"", "SB_TEST_SMS_NOT_SET", ""}, "provider.x");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("provider.x"), std::string::npos);
}

}  // namespace
}  // namespace sb
