// `smtpblast returns`: read returned mail, match it to the task's recipients, record it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "base/result.h"
#include "returns/remote_mailbox.h"

namespace sb {

struct ReturnsOptions {
  std::string task;
  std::string maildir;                 // --maildir DIR: new/ and cur/
  std::string mbox;                    // --mbox FILE
  bool stdin_eml = false;              // "-": one message on stdin (piping from an MTA)
  std::string mailbox;                 // --mailbox imaps://user@host/INBOX | pop3s://user@host
  std::string mailbox_password_file;   // else $SMTPBLAST_MAILBOX_PASSWORD
  std::string mailbox_tls = "verify";  // "none": imap:// and pop3:// without STARTTLS
  std::string mailbox_ca;              // extra CA bundle for the mailbox server
  std::string keep_dir;                // --keep DIR: a raw copy of every message processed
  std::string rules_file;    // --rules FILE: classification rules tried before the shipped ones
  std::string suppress_out;  // --suppress-out FILE: bounced + complained addresses
  uint32_t soft_limit = 3;   // --soft-limit N: N soft bounces count as a hard one (0: never)
  bool json = false;
};

// Exit codes: 0 done (whatever the messages were); 2 bad options, unreadable mailbox or
// task, a refused mailbox login, a task being sent (its lock is held).
int run_returns(const ReturnsOptions& o);

// send --pop-before-smtp URL: the POP3 login (password from the file, else
// $SMTPBLAST_POP_PASSWORD; tls "verify" or "none") and the refresh interval ("5m").
Result<std::pair<RemoteMailboxConfig, uint64_t>> pop_before_smtp_config(
    const std::string& url, const std::string& password_file, const std::string& tls,
    const std::string& refresh);

}  // namespace sb
