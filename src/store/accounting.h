// The accounting log (--accounting FILE): one CSV or JSONL line per delivery attempt.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "store/task_store.h"

namespace sb {

struct AccountingRecord {
  int64_t time_ms = 0;  // when the attempt ended, ms since the epoch (written as UTC)
  std::string recipient;
  RcptStatus status = RcptStatus::kSent;  // sent, deferred, failed or suppressed
  int code = 0;                           // SMTP reply code, 0 when there was none
  std::string reply;                      // reply text or local reason, raw: the log sanitises it
  std::string remote_host;                // "" when no connection was involved (suppressed)
  uint16_t remote_port = 0;
  std::string tls_version;     // "TLSv1.3", "" when the session was not encrypted
  uint32_t attempt = 0;        // 1 for the first attempt at this recipient (across runs)
  uint64_t connection_id = 0;  // 0 when no connection
  uint32_t elapsed_ms = 0;     // time spent on this attempt
  // What the reply means (the returns classifier's category: invalid-recipient,
  // mailbox-full, spam-block, rate-limit, authentication, policy, ...); "" when sent.
  std::string category;
};

// Columns (CSV header) and keys (JSONL), in this order:
//   time, recipient, status, code, enhanced_code, reply, remote_host, remote_port,
//   tls_version, attempt, connection_id, elapsed_ms, category
// time is ISO 8601 UTC with milliseconds ("2024-05-01T12:34:56.789Z"); enhanced_code is
// the RFC 3463 code ("5.1.1") found at the start of the reply text (after a leading
// "550 " / "550-" if the text carries the reply code), else "". Numbers are written as
// numbers (code 0 = no reply, port 0 = no connection).
// Text fields are sanitised: invalid UTF-8 octets become '?', each run of control characters
// (C0 incl. CR LF and tab, DEL, C1) becomes one space, and the reply is cut to 512 octets (never
// inside a UTF-8 sequence); so every record is exactly one line. CSV: RFC 4180 quoting (a field
// with ',', '"' or a leading/trailing space is quoted, '"' doubled), lines end in LF; the header is
// written only when the file is empty at open. JSONL: one JSON object a line, strings escaped per
// RFC 8259.

// Formats one record as a line (with its '\n'); exposed for tests and for --dry-run output.
void format_accounting_csv(const AccountingRecord& r, std::string& out);
void format_accounting_jsonl(const AccountingRecord& r, std::string& out);
// The RFC 3463 enhanced status code at the start of a reply text ("" when none).
std::string_view enhanced_status_code(std::string_view reply_text);

// Appends one RFC 4180 CSV field: quoted when it holds a comma, quote, CR or LF, or starts
// or ends with a space or tab; quotes doubled. Shared by this log and `smtpblast export`.
void append_csv_field(std::string_view v, std::string& out);

// Not thread-safe: one thread (the journal thread) owns the log and makes every call on it.
class AccountingLog {
 public:
  enum class Format { kCsv, kJsonl };

  // Opens (creating it with mode 0600: it names every recipient) for appending (O_APPEND).
  // The format comes from the extension, ".csv" or ".jsonl" (any case); anything else is a
  // kConfig error, as is a file that cannot be opened. If the file is not empty and its last
  // line lacks a newline (a run killed mid-write), the first write starts on a fresh line.
  static Result<std::unique_ptr<AccountingLog>> open(const std::string& path);
  ~AccountingLog();  // flushes what is buffered (errors ignored; call flush() to see them)
  AccountingLog(const AccountingLog&) = delete;
  AccountingLog& operator=(const AccountingLog&) = delete;

  // Formats the record into the buffer; writes nothing.
  void add(const AccountingRecord& r);
  // Writes the buffer (one write(2) per call in the usual case). On failure (ENOSPC, EIO...)
  // returns a kSys error naming the file and keeps the unwritten bytes: a later flush()
  // retries them, so nothing is lost or written twice while the process lives.
  // No fsync: the task store is the record of truth, this log is a report of it.
  Status flush();

  Format format() const { return format_; }
  const std::string& path() const { return path_; }
  size_t buffered() const { return buf_.size() - written_; }

 private:
  AccountingLog(std::string path, int fd, Format f);

  std::string path_;
  int fd_ = -1;
  Format format_;
  std::string buf_;
  size_t written_ = 0;  // octets of buf_ already written (after a short write)
};

}  // namespace sb
