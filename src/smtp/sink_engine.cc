// The sink's protocol engine: parses SMTP commands and message bodies, produces replies.
#include "smtp/sink_engine.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "base/text.h"

namespace sb {
namespace {

// Replies are constants so the fast path only appends; none echoes client text back.
constexpr std::string_view kMailOk = "250 2.1.0 Ok\r\n";
constexpr std::string_view kRcptOk = "250 2.1.5 Ok\r\n";
constexpr std::string_view kRcptReject = "550 5.1.1 Recipient address rejected (sink fault)\r\n";
constexpr std::string_view kRcptDefer = "451 4.3.0 Recipient deferred (sink fault)\r\n";
constexpr std::string_view kTooManyRcpts = "452 4.5.3 Error: too many recipients\r\n";
constexpr std::string_view kDataGo = "354 End data with <CR><LF>.<CR><LF>\r\n";
constexpr std::string_view kQueued = "250 2.0.0 Ok: queued\r\n";
constexpr std::string_view kChunkOk = "250 2.0.0 Ok: chunk received\r\n";
constexpr std::string_view kTxnDefer = "451 4.3.0 Transaction deferred (sink fault)\r\n";
constexpr std::string_view kTooBig = "552 5.3.4 Message size exceeds fixed limit\r\n";
constexpr std::string_view kRateLimited = "451 4.7.0 Rate limited, try again later (sink fault)\r\n";
constexpr std::string_view kNoValidRcpt = "554 5.5.1 Error: no valid recipients\r\n";
constexpr std::string_view kOk = "250 2.0.0 Ok\r\n";
constexpr std::string_view kBye = "221 2.0.0 Bye\r\n";
constexpr std::string_view kVrfy = "252 2.0.0 Cannot VRFY user; try RCPT to attempt delivery\r\n";
constexpr std::string_view kNotImpl = "502 5.5.1 Error: command not implemented\r\n";
constexpr std::string_view kUnknown = "500 5.5.2 Error: command not recognized\r\n";
constexpr std::string_view kLineTooLong = "500 5.5.2 Error: line too long\r\n";
constexpr std::string_view kNeedHelo = "503 5.5.1 Error: send HELO/EHLO first\r\n";
constexpr std::string_view kNestedMail = "503 5.5.1 Error: nested MAIL command\r\n";
constexpr std::string_view kNeedMail = "503 5.5.1 Error: need MAIL command\r\n";
constexpr std::string_view kDataAfterBdat = "503 5.5.1 Error: DATA after BDAT\r\n";
constexpr std::string_view kHeloSyntax = "501 5.5.4 Syntax: EHLO hostname\r\n";
constexpr std::string_view kMailSyntax = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n";
constexpr std::string_view kRcptSyntax = "501 5.5.4 Syntax: RCPT TO:<address>\r\n";
constexpr std::string_view kSizeSyntax = "501 5.5.4 Bad SIZE parameter\r\n";
constexpr std::string_view kBdatSyntax = "501 5.5.4 Syntax: BDAT count [LAST]\r\n";

constexpr char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

constexpr uint32_t verb_code(const char* v) {
  return static_cast<uint32_t>(static_cast<unsigned char>(upper(v[0]))) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(upper(v[1]))) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(upper(v[2]))) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(upper(v[3])));
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_u64(std::string_view s, uint64_t& v) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

void append_u64(std::string& out, uint64_t v) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, static_cast<size_t>(ptr - buf));
}

// "FROM:<path> params" after its keyword: the path inside <> (quoted local parts may hold
// '>') and the parameters after it. False on a syntax error.
bool split_path(std::string_view arg, std::string_view keyword, std::string_view& path,
                std::string_view& params) {
  if (!istarts_with(arg, keyword)) return false;
  arg = trim(arg.substr(keyword.size()));  // lenient: "FROM: <a@b>" is common
  if (arg.empty() || arg.front() != '<') return false;
  bool quoted = false;
  for (size_t i = 1; i < arg.size(); ++i) {
    char c = arg[i];
    if (c == '\\' && quoted) {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == '>' && !quoted) {
      path = arg.substr(1, i - 1);
      params = arg.substr(i + 1);
      return params.empty() || params.front() == ' ';
    }
  }
  return false;
}

}  // namespace

SinkEngine::SinkEngine(const SinkConfig& cfg, SinkCounters& counters, uint64_t conn_seed)
    : cfg_(cfg), counters_(counters), rng_(cfg.seed ^ conn_seed) {
  ++counters_.connections;
}

// splitmix64: cheap, and good enough that a share of 0.5 over 1000 draws lands near 500.
double SinkEngine::next_share() {
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

void SinkEngine::start(std::string& out) {
  out += "220 ";
  out += cfg_.hostname;
  out += " ESMTP smtpblast-sink\r\n";
}

bool SinkEngine::on_data(std::string_view in, std::string& out) {
  const char* p = in.data();
  const char* end = p + in.size();
  while (p < end) {
    switch (phase_) {
      case Phase::kCommand:
        p = feed_command(p, end, out);
        break;
      case Phase::kData:
        p = feed_data(p, end, out);
        break;
      case Phase::kBdat:
        p = feed_bdat(p, end, out);
        break;
      case Phase::kClosed:
        return false;
    }
  }
  return phase_ != Phase::kClosed;
}

std::string SinkEngine::take_recorded() {
  std::string r;
  r.swap(recorded_);
  return r;
}

const char* SinkEngine::feed_command(const char* p, const char* end, std::string& out) {
  const auto* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
  if (lf == nullptr) {
    // Partial line: keep it, but never more than a line may hold (+1 for its CR).
    size_t n = static_cast<size_t>(end - p);
    if (!line_too_long_) {
      if (line_.size() + n > kMaxLine + 1) {
        line_too_long_ = true;
        line_.clear();
      } else {
        line_.append(p, n);
      }
    }
    return end;
  }
  const char* next = lf + 1;
  if (line_too_long_) {
    line_too_long_ = false;
    protocol_error(kLineTooLong, out);
    return next;
  }
  std::string_view line;
  if (line_.empty()) {
    line = std::string_view(p, static_cast<size_t>(lf - p));  // fast path: no copy
  } else {
    line_.append(p, static_cast<size_t>(lf - p));
    line = line_;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kMaxLine) {
    protocol_error(kLineTooLong, out);
  } else {
    on_command(line, out);
  }
  line_.clear();
  return next;
}

void SinkEngine::on_command(std::string_view line, std::string& out) {
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  if (verb.size() != 4) {
    if (iequals(verb, "STARTTLS")) {
      protocol_error(kNotImpl, out);
    } else {
      protocol_error(kUnknown, out);
    }
    return;
  }
  switch (verb_code(verb.data())) {
    case verb_code("MAIL"):
      on_mail(arg, out);
      return;
    case verb_code("RCPT"):
      on_rcpt(arg, out);
      return;
    case verb_code("DATA"):
      on_data_cmd(out);
      return;
    case verb_code("BDAT"):
      on_bdat(arg, out);
      return;
    case verb_code("EHLO"):
    case verb_code("HELO"): {
      if (trim(arg).empty()) {
        protocol_error(kHeloSyntax, out);
        return;
      }
      helo_ = true;
      reset_transaction();
      if (upper(verb[0]) == 'H') {
        out += "250 ";
        out += cfg_.hostname;
        out += "\r\n";
        return;
      }
      out += "250-";
      out += cfg_.hostname;
      out += "\r\n";
      if (cfg_.pipelining) out += "250-PIPELINING\r\n";
      out += "250-SIZE";
      if (cfg_.max_size != 0) {
        out += ' ';
        append_u64(out, cfg_.max_size);
      }
      out += "\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n";
      if (cfg_.chunking) out += "250-CHUNKING\r\n";
      out += "250 ENHANCEDSTATUSCODES\r\n";
      return;
    }
    case verb_code("RSET"):
      reset_transaction();
      out += kOk;
      return;
    case verb_code("NOOP"):
      out += kOk;
      return;
    case verb_code("QUIT"):
      out += kBye;
      phase_ = Phase::kClosed;
      return;
    case verb_code("VRFY"):
      out += kVrfy;
      return;
    case verb_code("EXPN"):
    case verb_code("HELP"):
    case verb_code("AUTH"):
    case verb_code("ETRN"):
      protocol_error(kNotImpl, out);
      return;
    default:
      protocol_error(kUnknown, out);
      return;
  }
}

void SinkEngine::on_mail(std::string_view arg, std::string& out) {
  if (!helo_) return protocol_error(kNeedHelo, out);
  if (have_mail_) return protocol_error(kNestedMail, out);
  std::string_view path;
  std::string_view params;
  if (!split_path(arg, "FROM:", path, params)) return protocol_error(kMailSyntax, out);
  while (!params.empty()) {
    params = trim(params);
    size_t sp = params.find(' ');
    std::string_view param = params.substr(0, sp);
    params = sp == std::string_view::npos ? std::string_view() : params.substr(sp);
    if (istarts_with(param, "SIZE=")) {
      uint64_t size = 0;
      if (!parse_u64(param.substr(5), size)) return protocol_error(kSizeSyntax, out);
      if (cfg_.max_size != 0 && size > cfg_.max_size) {
        out += kTooBig;
        return;
      }
    }
  }
  have_mail_ = true;
  if (cfg_.record) mail_from_.assign(path);
  out += kMailOk;
}

void SinkEngine::on_rcpt(std::string_view arg, std::string& out) {
  if (!have_mail_) return protocol_error(kNeedMail, out);
  std::string_view path;
  std::string_view params;
  if (!split_path(arg, "TO:", path, params) || path.empty()) {
    return protocol_error(kRcptSyntax, out);
  }
  if (rcpts_ >= kMaxRcpts) {
    out += kTooManyRcpts;
    return;
  }
  double u = next_share();
  if (u < cfg_.reject_rcpt) {
    ++counters_.rejected_rcpts;
    out += kRcptReject;
    return;
  }
  if (u < cfg_.reject_rcpt + cfg_.defer_rcpt) {
    ++counters_.deferred_rcpts;
    if (cfg_.defer_reply.empty()) out += kRcptDefer; else out.append(cfg_.defer_reply).append("\r\n");
    return;
  }
  ++rcpts_;
  if (cfg_.record) {
    rcpt_lines_ += "RCPT ";
    rcpt_lines_ += path;
    rcpt_lines_ += '\n';
  }
  out += kRcptOk;
}

void SinkEngine::on_data_cmd(std::string& out) {
  if (!have_mail_) return protocol_error(kNeedMail, out);
  if (bdat_used_) return protocol_error(kDataAfterBdat, out);
  if (rcpts_ == 0) {
    // RFC 2920: the client waits for 354, so no body follows this.
    out += kNoValidRcpt;
    return;
  }
  phase_ = Phase::kData;
  data_state_ = DataState::kLineStart;
  body_bytes_ = 0;
  if (cfg_.record) body_.clear();
  out += kDataGo;
}

void SinkEngine::on_bdat(std::string_view arg, std::string& out) {
  arg = trim(arg);
  size_t sp = arg.find(' ');
  uint64_t n = 0;
  bool last = false;
  bool ok = parse_u64(arg.substr(0, sp), n);
  if (ok && sp != std::string_view::npos) {
    last = iequals(trim(arg.substr(sp)), "LAST");
    ok = last;
  }
  if (!ok) {
    // The chunk's length is unknown, so its octets would be read as commands.
    out += kBdatSyntax;
    phase_ = Phase::kClosed;
    return;
  }
  if (!have_mail_) {
    bdat_error_ = kNeedMail;
  } else if (rcpts_ == 0) {
    bdat_error_ = kNoValidRcpt;
  } else {
    bdat_error_ = {};
    if (!bdat_used_) {
      bdat_used_ = true;
      body_bytes_ = 0;
      if (cfg_.record) body_.clear();
    }
  }
  bdat_left_ = n;
  bdat_last_ = last;
  if (n == 0) {
    end_bdat_chunk(out);
  } else {
    phase_ = Phase::kBdat;
  }
}

const char* SinkEngine::feed_bdat(const char* p, const char* end, std::string& out) {
  size_t avail = static_cast<size_t>(end - p);
  size_t n = bdat_left_ < avail ? static_cast<size_t>(bdat_left_) : avail;
  if (bdat_error_.empty()) body_octets(p, n);
  bdat_left_ -= n;
  if (bdat_left_ == 0) end_bdat_chunk(out);
  return p + n;
}

void SinkEngine::end_bdat_chunk(std::string& out) {
  phase_ = Phase::kCommand;
  if (!bdat_error_.empty()) {
    std::string_view reply = bdat_error_;
    bdat_error_ = {};
    if (reply == kNeedMail) return protocol_error(reply, out);
    out += reply;
    if (bdat_last_) reset_transaction();
    return;
  }
  if (bdat_last_) {
    end_message(out);
  } else {
    out += kChunkOk;
  }
}

void SinkEngine::body_octets(const char* p, size_t n) {
  body_bytes_ += n;
  if (cfg_.record) body_.append(p, n);
}

// Scans a DATA body line by line with memchr; octets are passed on in runs, and only a
// stuffed dot at line start is held back (and dropped).
const char* SinkEngine::feed_data(const char* p, const char* end, std::string& out) {
  while (p < end) {
    switch (data_state_) {
      case DataState::kLineStart:
        if (*p == '.') {
          data_state_ = DataState::kDot;
          ++p;
        } else {
          data_state_ = DataState::kMid;
        }
        break;
      case DataState::kDot:
        if (*p == '\r') {
          data_state_ = DataState::kDotCr;
          ++p;
        } else {
          data_state_ = DataState::kMid;  // the dot was stuffing: dropped
        }
        break;
      case DataState::kDotCr:
        if (*p == '\n') {
          end_message(out);
          return p + 1;
        }
        body_octets("\r", 1);  // "." CR x: the dot was stuffing, the CR is content
        data_state_ = DataState::kMid;
        break;
      case DataState::kCr:
        if (*p == '\n') {
          body_octets(p, 1);
          data_state_ = DataState::kLineStart;
          ++p;
        } else {
          data_state_ = DataState::kMid;
        }
        break;
      case DataState::kMid: {
        const auto* lf =
            static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        if (lf == nullptr) {
          body_octets(p, static_cast<size_t>(end - p));
          data_state_ = end[-1] == '\r' ? DataState::kCr : DataState::kMid;
          return end;
        }
        // kMid is never entered right after a CR, so a CR before this LF is in [p, lf).
        bool crlf = lf > p && lf[-1] == '\r';
        body_octets(p, static_cast<size_t>(lf + 1 - p));
        data_state_ = crlf ? DataState::kLineStart : DataState::kMid;
        p = lf + 1;
        break;
      }
    }
  }
  return p;
}

void SinkEngine::end_message(std::string& out) {
  phase_ = Phase::kCommand;
  double u = next_share();
  if (u < cfg_.drop_txn) {
    ++counters_.dropped;
    phase_ = Phase::kClosed;
    return;
  }
  if (u < cfg_.drop_txn + cfg_.defer_txn) {
    if (cfg_.defer_reply.empty()) out += kTxnDefer; else out.append(cfg_.defer_reply).append("\r\n");
  } else if (cfg_.max_size != 0 && body_bytes_ > cfg_.max_size) {
    out += kTooBig;
  } else if (limits_ != nullptr && cfg_.fault_421_at != 0 && !limits_->fault_421_done &&
             counters_.messages + 1 >= cfg_.fault_421_at) {
    limits_->fault_421_done = true;
    counters_.fault_421_ms = static_cast<int64_t>(now_ms_);
    counters_.messages_before_421 = counters_.messages;
    out += "421 4.7.0 ";
    out += cfg_.hostname;
    out += " Too many messages, slow down (sink fault)\r\n";
    phase_ = Phase::kClosed;
    return;
  } else if (rate_limited()) {
    ++counters_.rate_limited;
    out += kRateLimited;
  } else {
    ++counters_.messages;
    if (counters_.first_ms < 0) counters_.first_ms = static_cast<int64_t>(now_ms_);
    counters_.last_ms = static_cast<int64_t>(now_ms_);
    counters_.recipients += rcpts_;
    counters_.bytes += body_bytes_;
    if (cfg_.record) {
      recorded_ += "MAIL ";
      recorded_ += mail_from_;
      recorded_ += '\n';
      recorded_ += rcpt_lines_;
      recorded_ += "BODY ";
      append_u64(recorded_, body_.size());
      recorded_ += '\n';
      recorded_ += body_;
      recorded_ += '\n';
    }
    out += kQueued;
  }
  reset_transaction();
}

bool SinkEngine::rate_limited() {
  if (limits_ == nullptr || cfg_.rate_limit <= 0) return false;
  // A token bucket of 100 ms of burst, refilled at rate_limit a second.
  const double depth = std::max(1.0, cfg_.rate_limit / 10);
  SinkLimits& l = *limits_;
  if (l.tokens < 0) {
    l.tokens = depth;
  } else if (now_ms_ > l.last_ms) {
    l.tokens = std::min(depth, l.tokens + cfg_.rate_limit * double(now_ms_ - l.last_ms) / 1000);
  }
  l.last_ms = std::max(l.last_ms, now_ms_);
  if (l.tokens < 1) return true;
  l.tokens -= 1;
  return false;
}

void SinkEngine::protocol_error(std::string_view reply, std::string& out) {
  out += reply;
  if (++errors_ > kMaxErrors) {
    out += "421 4.7.0 ";
    out += cfg_.hostname;
    out += " Error: too many errors\r\n";
    phase_ = Phase::kClosed;
  }
}

void SinkEngine::reset_transaction() {
  have_mail_ = false;
  bdat_used_ = false;
  rcpts_ = 0;
  body_bytes_ = 0;
  // clear() keeps the capacity, so the next transaction allocates nothing.
  mail_from_.clear();
  rcpt_lines_.clear();
  body_.clear();
}

bool SinkEngine::parse_recorded(std::string_view rec, std::vector<RecordedMessage>& msgs) {
  auto take_line = [&rec](std::string_view& line) {
    size_t lf = rec.find('\n');
    if (lf == std::string_view::npos) return false;
    line = rec.substr(0, lf);
    rec.remove_prefix(lf + 1);
    return true;
  };
  while (!rec.empty()) {
    RecordedMessage m;
    std::string_view line;
    if (!take_line(line) || !line.starts_with("MAIL ")) return false;
    m.mail_from.assign(line.substr(5));
    for (;;) {
      if (!take_line(line)) return false;
      if (line.starts_with("RCPT ")) {
        m.rcpts.emplace_back(line.substr(5));
        continue;
      }
      uint64_t n = 0;
      if (!line.starts_with("BODY ") || !parse_u64(line.substr(5), n)) return false;
      if (rec.size() < n + 1 || rec[n] != '\n') return false;
      m.body.assign(rec.substr(0, n));
      rec.remove_prefix(n + 1);
      break;
    }
    msgs.push_back(std::move(m));
  }
  return true;
}

}  // namespace sb
