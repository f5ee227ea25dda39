// RFC 3463 enhanced status codes ("5.1.1 ...") read from the opening of a reply's text.
#pragma once

#include <string_view>

namespace sb {

// An RFC 3463 enhanced status code opening a reply text ("2.1.5 Ok"); cls = -1 when the text
// does not open with one.
struct EnhancedCode {
  int cls = -1;
  int subject = -1;
  int detail = -1;
};

EnhancedCode enhanced_code(std::string_view text);

}  // namespace sb
