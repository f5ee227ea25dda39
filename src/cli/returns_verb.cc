// `smtpblast returns`: its flags -> ReturnsOptions -> run_returns (returns_cmd.cc).
#include <cstdio>
#include <memory>

#include "cli/returns_cmd.h"
#include "cli/verb.h"

namespace sb {

namespace {

class ReturnsVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    CLI::App* returns = app.add_subcommand(
        "returns",
        "read returned mail (bounces, complaints) into the task; hard bounces are "
        "suppressed");
    returns->add_option("--task", rto_.task, "task file, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    returns->add_option(
        "--mailbox", rto_.mailbox,
        "imaps://user@host/INBOX or pop3s://user@host (imap://, pop3://: STARTTLS)");
    returns->add_option("--mailbox-password-file", rto_.mailbox_password_file,
                        "the mailbox password (else $SMTPBLAST_MAILBOX_PASSWORD)");
    returns->add_option("--mailbox-tls", rto_.mailbox_tls,
                        "verify (default) or none: imap:// and pop3:// in the clear (tests)");
    returns->add_option("--mailbox-ca", rto_.mailbox_ca, "CA bundle for the mailbox server");
    returns->add_option("--maildir", rto_.maildir, "a maildir (new/ and cur/) of returned mail");
    returns->add_option("--mbox", rto_.mbox, "an mbox file of returned mail (never modified)");
    returns->add_option("source", src_, "- : one message on stdin");
    returns->add_option("--keep", rto_.keep_dir, "keep a raw copy of each processed message here");
    returns->add_option("--rules", rto_.rules_file,
                        "classification rules tried before the shipped ones");
    returns->add_option("--suppress-out", rto_.suppress_out,
                        "write bounced and complained addresses to FILE (a --suppress list)");
    returns->add_option("--soft-limit", rto_.soft_limit,
                        "this many soft bounces count as a hard one (0: never; default 3)");
    returns->add_flag("--json", rto_.json, "one JSON object");

    return returns;
  }

  int run() override {
    if (!src_.empty() && src_ != "-") {
      std::fprintf(stderr, "smtpblast: returns: '%s': the only source argument is - (stdin)\n",
                   src_.c_str());
      return 2;
    }
    rto_.stdin_eml = src_ == "-";
    return run_returns(rto_);
  }

 private:
  ReturnsOptions rto_;
  std::string src_;  // "-": one message on stdin
};

}  // namespace

std::unique_ptr<Verb> make_returns_verb() { return std::make_unique<ReturnsVerb>(); }

}  // namespace sb
