// SMTP reply parser (RFC 5321 §4.2): "ddd-text" continuation lines, "ddd text" final line.
#include "smtp/reply_parser.h"

#include <algorithm>
#include <cstring>

namespace sb {

std::string Reply::summary() const {
  std::string s = std::to_string(code);
  if (!text.empty()) {
    s.push_back(' ');
    for (char c : text) s.push_back(c == '\n' ? ' ' : c);
  }
  return s;
}

void append_sanitised(std::string& out, std::string_view in, size_t cap) {
  size_t i = 0;
  while (i < in.size() && out.size() < cap) {
    // A run of printable ASCII (a whole reply line, usually) goes in with one append: this runs
    // for every reply, and a push_back per octet was ~700 instructions a message (issue 17).
    size_t end = i + std::min(in.size() - i, cap - out.size());
    size_t j = i;
    while (j < end && static_cast<unsigned char>(in[j]) >= 0x20 &&
           static_cast<unsigned char>(in[j]) < 0x7f) {
      ++j;
    }
    if (j > i) {
      out.append(in.data() + i, j - i);
      i = j;
      continue;
    }
    auto c = static_cast<unsigned char>(in[i]);
    // Keep a well-formed UTF-8 sequence (servers localise texts); anything else becomes '?'.
    size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (c >= 0xf5) len = 0;
    bool ok = len > 0 && i + len <= in.size() && out.size() + len <= cap;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(in[i + k]) & 0xc0) == 0x80;
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.push_back('?');
      ++i;
    }
  }
}

void ReplyParser::reset() {
  line_.clear();
  text_.clear();
  error_.clear();
  code_ = 0;
  mid_reply_ = false;
  lines_ = 0;
}

void ReplyParser::fail(std::string msg) {
  if (error_.empty()) error_ = std::move(msg);
}

bool ReplyParser::next(std::string_view& in, Reply& out) {
  while (!failed() && !in.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(in.data(), '\n', in.size()));
    if (nl == nullptr) {
      if (line_.size() + in.size() > kMaxLine) {
        fail("reply line longer than " + std::to_string(kMaxLine) + " octets");
        return false;
      }
      line_.append(in);
      in.remove_prefix(in.size());
      return false;
    }
    size_t n = static_cast<size_t>(nl - in.data());
    std::string_view line;
    if (line_.empty()) {
      line = in.substr(0, n);
    } else {
      line_.append(in.substr(0, n));
      line = line_;
    }
    in.remove_prefix(n + 1);
    if (line.size() > kMaxLine) {
      fail("reply line longer than " + std::to_string(kMaxLine) + " octets");
      return false;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool done = take_line(line, out);
    line_.clear();
    if (done) return true;
  }
  return false;
}

bool ReplyParser::take_line(std::string_view line, Reply& out) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) || line[0] < '2' ||
      line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    std::string shown;
    append_sanitised(shown, line, 60);
    fail("malformed reply line \"" + shown + "\"");
    return false;
  }
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!mid_reply_) {
    code_ = code;
    lines_ = 0;
    text_.clear();
    mid_reply_ = true;
  } else if (code != code_) {
    fail("reply code changed from " + std::to_string(code_) + " to " + std::to_string(code) +
         " inside a multiline reply");
    return false;
  }
  if (++lines_ > kMaxLines) {
    fail("reply of more than " + std::to_string(kMaxLines) + " lines");
    return false;
  }
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
  if (lines_ > 1 && text_.size() < kMaxReplyText) text_.push_back('\n');
  append_sanitised(text_, text, kMaxReplyText);
  bool last = line.size() == 3 || line[3] == ' ';
  if (!last) return false;
  out.code = code_;
  out.lines = lines_;
  out.text.assign(text_);  // a copy into reused capacity: the parser owns partial replies
  mid_reply_ = false;
  return true;
}

}  // namespace sb
