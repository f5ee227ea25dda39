// libFuzzer target for the template compiler and renderer: any bytes in, wire invariants out.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "message/template.h"

namespace {

// Aborts with a message: the replay harness and libFuzzer both treat abort as a crash.
void check(bool ok, const char* what, const std::string& out) {
  if (ok) return;
  std::fprintf(stderr, "template_fuzz invariant broken: %s\n--- output (%zu bytes):\n%s\n", what,
               out.size(), out.c_str());
  std::abort();
}

void check_wire(const sb::RenderedMessage& m, bool dot_stuff) {
  std::string out = m.flatten();
  check(out.size() == m.size, "size is the sum of the pieces", out);
  check(out.size() >= 2 && out.compare(out.size() - 2, 2, "\r\n") == 0, "ends with CRLF", out);
  bool high = false;
  size_t line_start = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(out[i]);
    if (c >= 0x80) high = true;
    if (c == '\r') check(i + 1 < out.size() && out[i + 1] == '\n', "no bare CR", out);
    if (c == '\n') {
      check(i > 0 && out[i - 1] == '\r', "no bare LF", out);
      std::string_view line(out.data() + line_start, i - 1 - line_start);
      // With DATA, the receiver would take a lone "." line as the end of the message.
      if (dot_stuff) check(line != ".", "no line that is a single dot", out);
      line_start = i + 1;
    }
  }
  check(high == m.eight_bit, "eight_bit matches the octets", out);
  // Headers are 7-bit unless a UTF-8 address needs SMTPUTF8 (RFC 6532); a DATA-stuffed
  // message may start with the stuffed dot of a ".name:" field.
  size_t head_end = out.find("\r\n\r\n");
  if (head_end != std::string::npos && !m.smtputf8) {
    for (size_t i = 0; i < head_end; ++i) {
      check(static_cast<unsigned char>(out[i]) < 0x80, "no 8-bit octet in headers", out);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  sb::TemplateOptions opts;
  opts.default_from = "Fuzz <fuzz@example.com>";
  opts.task_key = "fz";
  auto compiled = sb::CompiledTemplate::compile(raw, opts);
  if (!compiled.ok()) return 0;
  sb::CompiledTemplate t = std::move(compiled).value();
  if (!t.bind({"name", "x"}).ok()) return 0;  // unknown placeholder: a proper error, fine

  static const std::vector<std::vector<std::string>> kValues = {
      {"", ""},
      {"Bob", "plain"},
      {".", "."},
      {".lead", "a\n.\nb"},
      {"x\r\n.\r\n", "\r.\r"},
      {"J\xC3\xBCrgen", std::string(300, '\xE2') + "="},
      {std::string("nul\0byte", 8), "tail\n"},
      {"Smith, Jr.", "O\"Neil <a@b.c>"},
      {"a@b.c, evil@x.y", "=?UTF-8?B?SGk=?= Team <b>&</b>"},
      {"j\xC3\xB6rg@example.org", "x@b\xC3\xBC" "cher.example"},
  };
  sb::RenderedMessage m;  // reused across renders, as the sender does
  for (const auto& values : kValues) {
    for (bool dot_stuff : {true, false}) {
      sb::Status s = t.render({"rcpt@example.org", &values, 7, 1700000000}, dot_stuff, m);
      if (!s.ok()) {
        // Only header-bound values with CR, LF or NUL may fail.
        check(s.error().domain == sb::ErrDomain::kInput, "render error is kInput",
              s.error().message);
        continue;
      }
      check_wire(m, dot_stuff);
    }
  }
  return 0;
}
