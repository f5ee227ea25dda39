// `smtpblast unsub-verify`: the web service's check of a token, from the command line.
#include "cli/unsub_verify.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "message/unsubscribe.h"

namespace sb {

CLI::App* add_unsub_verify_command(CLI::App& app, UnsubVerifyArgs& a) {
  auto* v = app.add_subcommand(
      "unsub-verify",
      "check a one-click unsubscribe token ({{token}} of --unsubscribe-url): print the "
      "recipient and task it names (exit 0), or why it is not valid (exit 1)");
  v->add_option("--secret-file", a.secret_file, "the --unsubscribe-secret-file of the mailing")
      ->required();
  v->add_option("token", a.token, "the token, or a URL whose query holds it")->required();
  v->add_flag("--json", a.json, "one JSON object: {\"recipient\": …, \"task\": …}");
  return v;
}

namespace {

// A pasted URL: take the last query or path value that decodes (tokens are base64url, so no
// percent-decoding is needed).
std::string token_from(const std::string& arg) {
  if (arg.find("://") == std::string::npos) return arg;
  std::string s = arg.substr(0, arg.find('#'));
  size_t cut = s.find_last_of("=/");
  return cut == std::string::npos ? s : s.substr(cut + 1);
}

}  // namespace

int run_unsub_verify(const UnsubVerifyArgs& a) {
  auto secret = load_unsubscribe_secret(a.secret_file);
  if (!secret.ok()) {
    std::fprintf(stderr, "smtpblast: --secret-file: %s\n", secret.error().message.c_str());
    return 2;
  }
  auto t = verify_token(*secret, token_from(a.token));
  if (!t.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", t.error().message.c_str());
    return 1;
  }
  if (a.json) {
    nlohmann::json j;
    // Addresses are UTF-8 (RFC 6532); replace anything else rather than throw.
    j["recipient"] = t->recipient;
    j["task"] = t->task_id;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("recipient: %s\ntask: %s\n", t->recipient.c_str(), t->task_id.c_str());
  }
  return 0;
}

}  // namespace sb
