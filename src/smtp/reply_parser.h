// SMTP reply parser: turns server bytes into complete replies (code + sanitised text).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sb {

struct Reply {
  int code = 0;
  // Text of all lines after the code, joined with "\n", non-printables replaced by '?',
  // capped at kMaxReplyText octets (the rest is parsed and dropped).
  std::string text;
  uint32_t lines = 0;

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // "250 2.0.0 Ok" style one-line form for logs and the store.
  std::string summary() const;
};

// Incremental and allocation-free once Reply::text has grown: replies split at any byte are
// reassembled; several replies in one read come out one by one.
class ReplyParser {
 public:
  static constexpr size_t kMaxLine = 2048;      // RFC 5321 says 512; servers exceed it
  static constexpr uint32_t kMaxLines = 200;     // a reply longer than this is an attack
  static constexpr size_t kMaxReplyText = 1024;

  // Consumes bytes from `in` (advancing it) until one reply is complete; returns true with
  // `out` filled, false when more bytes are needed or the stream is bad (see failed()).
  bool next(std::string_view& in, Reply& out);

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Bytes held from a partial line: after a reply that must be the last thing the server
  // sends (220 to STARTTLS), anything here or still unread is an injection.
  bool has_partial() const { return !line_.empty() || mid_reply_; }
  void reset();

 private:
  bool take_line(std::string_view line, Reply& out);
  void fail(std::string msg);

  std::string line_;  // partial line carried between calls
  std::string text_;  // text of the reply being assembled
  std::string error_;
  int code_ = 0;
  bool mid_reply_ = false;
  uint32_t lines_ = 0;
};

// Replaces control and non-ASCII-printable octets so server text is safe for a terminal,
// a log or the store; UTF-8 is kept when valid. Caps the result at `cap` octets.
void append_sanitised(std::string& out, std::string_view in, size_t cap);

}  // namespace sb
