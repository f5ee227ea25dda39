// A returns mailbox over IMAP or POP3: libcurl's multi interface driven by a private libuv loop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace sb {

struct RemoteMailboxConfig {
  // imaps://user@host[:port]/MAILBOX, imap://… (STARTTLS), pop3s://user@host[:port],
  // pop3://… (STARTTLS). The user may also come from `user`.
  std::string url;
  std::string user;
  std::string password;  // never logged
  bool plain = false;    // --mailbox-tls none: imap:// and pop3:// without STARTTLS (tests)
  std::string ca_file;   // extra CA bundle; default: the system's
  long timeout_ms = 60000;
};

// One message in the mailbox as the server names it: an IMAP UID, or a POP3 message number
// with its UIDL. `memory_key` is what `returns` remembers (stable across sessions):
// "imap:<host>/<box>:<uidvalidity>:<uid>" or "pop3:<user>@<host>:<uidl>".
struct RemoteItem {
  std::string id;  // UID (IMAP) or message number (POP3) for this session
  std::string memory_key;
};

// Not thread-safe; one per `returns` run. Every call runs the loop until its transfer ends.
// TLS peers are verified (system CAs or ca_file, host name) unless the URL is plain.
class RemoteMailbox {
 public:
  // Logs in (a first listing) and returns the messages present. A refused login is a kConfig
  // error quoting the server ("login denied: ..."), a connection failure kUv.
  static Result<std::unique_ptr<RemoteMailbox>> open(const RemoteMailboxConfig& cfg);
  ~RemoteMailbox();
  RemoteMailbox(const RemoteMailbox&) = delete;
  RemoteMailbox& operator=(const RemoteMailbox&) = delete;

  const std::vector<RemoteItem>& items() const;
  bool is_pop3() const;
  // The raw message (at most max_bytes; larger ones are cut).
  Result<std::string> fetch(const RemoteItem& item, size_t max_bytes);
  // Marks a message deleted: IMAP \Deleted (expunged by finish), POP3 DELE (effective at QUIT).
  Status remove(const RemoteItem& item);
  // IMAP EXPUNGE; POP3: QUIT (closing the connection commits the DELEs).
  Status finish();

  struct Impl;  // public only so the .cc's C callbacks can name it; defined there

 private:
  explicit RemoteMailbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
