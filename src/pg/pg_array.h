// PgArray: a PostgreSQL array literal built element by element, to pass a batch of values as one
// parameter ($n::bigint[], $n::text[]) instead of one statement per value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sb {

class PgArray {
 public:
  // Text: quoted, backslash and quote escaped.
  void add(std::string_view v) {
    s_ += s_.empty() ? "{\"" : ",\"";
    for (char c : v) {
      if (c == '"' || c == '\\') s_ += '\\';
      s_ += c;
    }
    s_ += '"';
  }
  void add(int64_t v) {
    s_ += s_.empty() ? "{" : ",";
    s_ += std::to_string(v);
  }
  void add(bool v) {
    s_ += s_.empty() ? "{" : ",";
    s_ += v ? "t" : "f";
  }
  bool empty() const { return s_.empty(); }
  std::string done() const { return s_.empty() ? "{}" : s_ + "}"; }

 private:
  std::string s_;
};

}  // namespace sb
