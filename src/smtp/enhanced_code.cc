// RFC 3463 enhanced status codes ("5.1.1 ...") read from the opening of a reply's text.
#include "smtp/enhanced_code.h"

namespace sb {

EnhancedCode enhanced_code(std::string_view text) {
  EnhancedCode e;
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') {
    return e;
  }
  size_t i = 2;
  auto number = [&](int& v) {
    size_t start = i;
    v = 0;
    while (i < text.size() && i - start < 3 && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i++] - '0');
    }
    return i > start;
  };
  int subject = 0, detail = 0;
  if (!number(subject) || i >= text.size() || text[i++] != '.' || !number(detail)) return e;
  if (i < text.size() && text[i] != ' ' && text[i] != '\n') return e;
  e.cls = text[0] - '0';
  e.subject = subject;
  e.detail = detail;
  return e;
}

}  // namespace sb
