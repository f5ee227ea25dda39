// The accounting log: record formatting (CSV, JSONL), sanitising, buffered appends.
#include "store/accounting.h"
#include "base/text.h"
#include "base/utf8.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "store/address.h"

namespace sb {
namespace {

constexpr size_t kMaxReply = 512;
constexpr size_t kMaxField = 1024;  // other text fields: ours, but capped all the same
constexpr const char* kCsvHeader =
    "time,recipient,status,code,enhanced_code,reply,remote_host,remote_port,tls_version,"
    "attempt,connection_id,elapsed_ms,category\n";

// Untrusted text made fit for one line of a log: invalid UTF-8 octets become '?', each run
// of control characters (C0, DEL, C1; so CR LF too) becomes one space; then the result is cut
// to `max` octets without splitting a sequence.
std::string sanitise(std::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max + 4));
  bool in_ctl = false;
  for (size_t i = 0; i < s.size() && out.size() <= max;) {
    uint32_t cp = 0;
    size_t n = utf8_seq(s, i, &cp);
    if (n == 0) {
      out.push_back('?');
      in_ctl = false;
      ++i;
      continue;
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
      if (!in_ctl) out.push_back(' ');
      in_ctl = true;
    } else {
      out.append(s.substr(i, n));
      in_ctl = false;
    }
    i += n;
  }
  if (out.size() > max) out.resize(cap_utf8(out, max).size());
  return out;
}

void append_time(int64_t ms, std::string& out) {
  int64_t secs = ms / 1000;
  int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[40];
  int n = std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        static_cast<int>(frac));
  out.append(buf, static_cast<size_t>(n));
}

// RFC 8259 string escaping; the input is valid UTF-8 (sanitised), which goes through as is.
void append_json_string(std::string_view v, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : v) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

struct Sanitised {
  std::string recipient, reply, host, tls;
  std::string_view enhanced;
};

Sanitised sanitise_record(const AccountingRecord& r) {
  Sanitised s;
  s.recipient = sanitise(r.recipient, kMaxField);
  s.reply = sanitise(r.reply, kMaxReply);
  s.host = sanitise(r.remote_host, kMaxField);
  s.tls = sanitise(r.tls_version, kMaxField);
  s.enhanced = enhanced_status_code(s.reply);
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

void append_csv_field(std::string_view v, std::string& out) {
  // Tabs too: the import (libcsv) drops blanks around unquoted fields, so an exported
  // value starting or ending with one would not round-trip.
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  bool quote = v.find_first_of(",\"\r\n") != std::string_view::npos ||
               (!v.empty() && (blank(v.front()) || blank(v.back())));
  if (!quote) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

std::string_view enhanced_status_code(std::string_view t) {
  // A leading reply code ("550 " or "550-") is skipped: callers may pass the whole line.
  if (t.size() >= 4 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) &&
      (t[3] == ' ' || t[3] == '-')) {
    t.remove_prefix(4);
  }
  // RFC 3463: class "." subject "." detail; class is 2, 4 or 5, subject and detail 1-3 digits.
  if (t.size() < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.') return {};
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = i;
    while (i < t.size() && is_digit(t[i])) ++i;
    if (i == start || i - start > 3) return {};
    if (part == 0) {
      if (i >= t.size() || t[i] != '.') return {};
      ++i;
    }
  }
  if (i < t.size() && t[i] != ' ' && t[i] != '\t') return {};
  return t.substr(0, i);
}

void format_accounting_csv(const AccountingRecord& r, std::string& out) {
  Sanitised s = sanitise_record(r);
  append_time(r.time_ms, out);
  out.push_back(',');
  append_csv_field(s.recipient, out);
  out.push_back(',');
  out += status_name(r.status);
  out.push_back(',');
  out += std::to_string(r.code);
  out.push_back(',');
  out.append(s.enhanced);
  out.push_back(',');
  append_csv_field(s.reply, out);
  out.push_back(',');
  append_csv_field(s.host, out);
  out.push_back(',');
  out += std::to_string(r.remote_port);
  out.push_back(',');
  append_csv_field(s.tls, out);
  out.push_back(',');
  out += std::to_string(r.attempt);
  out.push_back(',');
  out += std::to_string(r.connection_id);
  out.push_back(',');
  out += std::to_string(r.elapsed_ms);
  out.push_back(',');
  append_csv_field(sanitise(r.category, 64), out);
  out.push_back('\n');
}

void format_accounting_jsonl(const AccountingRecord& r, std::string& out) {
  Sanitised s = sanitise_record(r);
  out += "{\"time\":\"";
  append_time(r.time_ms, out);
  out += "\",\"recipient\":";
  append_json_string(s.recipient, out);
  out += ",\"status\":\"";
  out += status_name(r.status);
  out += "\",\"code\":";
  out += std::to_string(r.code);
  out += ",\"enhanced_code\":";
  append_json_string(s.enhanced, out);
  out += ",\"reply\":";
  append_json_string(s.reply, out);
  out += ",\"remote_host\":";
  append_json_string(s.host, out);
  out += ",\"remote_port\":";
  out += std::to_string(r.remote_port);
  out += ",\"tls_version\":";
  append_json_string(s.tls, out);
  out += ",\"attempt\":";
  out += std::to_string(r.attempt);
  out += ",\"connection_id\":";
  out += std::to_string(r.connection_id);
  out += ",\"elapsed_ms\":";
  out += std::to_string(r.elapsed_ms);
  out += ",\"category\":";
  append_json_string(sanitise(r.category, 64), out);
  out += "}\n";
}

Result<std::unique_ptr<AccountingLog>> AccountingLog::open(const std::string& path) {
  Format f;
  if (iends_with(path, ".csv")) {
    f = Format::kCsv;
  } else if (iends_with(path, ".jsonl")) {
    f = Format::kJsonl;
  } else {
    return make_error(ErrDomain::kConfig, "--accounting " + path +
                                              ": the file name must end in .csv or .jsonl "
                                              "(that picks the format)");
  }
  // Read access only to look at the last octet; a write-only file still works without it.
  bool readable = true;
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EACCES) {
    readable = false;
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  }
  if (fd < 0) {
    return make_error(ErrDomain::kConfig,
                      "cannot open the accounting log " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(ErrDomain::kConfig,
                      "cannot open the accounting log " + path + ": " + std::strerror(e));
  }
  std::unique_ptr<AccountingLog> log(new AccountingLog(path, fd, f));
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    char last = '\n';
    if (readable && ::pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') {
      log->buf_.push_back('\n');
    }
  } else if (f == Format::kCsv && (!S_ISREG(st.st_mode) || st.st_size == 0)) {
    log->buf_ = kCsvHeader;
  }
  return log;
}

AccountingLog::AccountingLog(std::string path, int fd, Format f)
    : path_(std::move(path)), fd_(fd), format_(f) {}

AccountingLog::~AccountingLog() {
  if (fd_ >= 0) {
    (void)flush();
    ::close(fd_);
  }
}

void AccountingLog::add(const AccountingRecord& r) {
  if (format_ == Format::kCsv) {
    format_accounting_csv(r, buf_);
  } else {
    format_accounting_jsonl(r, buf_);
  }
}

Status AccountingLog::flush() {
  while (written_ < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + written_, buf_.size() - written_);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrDomain::kSys,
                        "cannot write the accounting log " + path_ + ": " + std::strerror(errno));
    }
    written_ += static_cast<size_t>(n);
  }
  buf_.clear();
  written_ = 0;
  return {};
}

}  // namespace sb
