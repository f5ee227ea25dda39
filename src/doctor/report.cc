// Doctor report formatting: text for a terminal, JSON for pipelines.
#include "doctor/report.h"

#include <nlohmann/json.hpp>

namespace sb::doctor {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "PASS";
    case Verdict::kWarn:
      return "WARN";
    case Verdict::kFail:
      return "FAIL";
  }
  return "?";
}

bool Report::failed() const { return count(Verdict::kFail) > 0; }

size_t Report::count(Verdict v) const {
  size_t n = 0;
  for (const Row& r : rows) n += r.verdict == v;
  return n;
}

namespace {

// Continuation lines of a multi-line field keep the row's indentation.
void append_field(std::string& out, const char* label, const std::string& value) {
  if (value.empty()) return;
  out += "       ";
  out += label;
  for (char c : value) {
    out.push_back(c);
    if (c == '\n') out += "         ";
  }
  out.push_back('\n');
}

}  // namespace

std::string Report::text() const {
  std::string out;
  for (const Row& r : rows) {
    out += verdict_name(r.verdict);
    out += "   ";
    out += r.check;
    if (!r.subject.empty()) out += " " + r.subject;
    out.push_back('\n');
    append_field(out, "found:    ", r.evidence);
    append_field(out, "expected: ", r.expected);
    if (r.verdict != Verdict::kPass) append_field(out, "fix:      ", r.fix);
  }
  out += std::to_string(count(Verdict::kPass)) + " passed, " +
         std::to_string(count(Verdict::kWarn)) + " warnings, " +
         std::to_string(count(Verdict::kFail)) + " failed\n";
  return out;
}

std::string Report::json() const {
  nlohmann::json j;
  j["rows"] = nlohmann::json::array();
  for (const Row& r : rows) {
    j["rows"].push_back({{"check", r.check},
                         {"subject", r.subject},
                         {"verdict", verdict_name(r.verdict)},
                         {"evidence", r.evidence},
                         {"expected", r.expected},
                         {"fix", r.verdict == Verdict::kPass ? "" : r.fix}});
  }
  j["pass"] = count(Verdict::kPass);
  j["warn"] = count(Verdict::kWarn);
  j["fail"] = count(Verdict::kFail);
  // Text from DNS is untrusted: invalid UTF-8 is replaced rather than aborting the dump.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string zone_txt(const std::string& name, const std::string& value) {
  std::string out = name + ". 3600 IN TXT";
  for (size_t p = 0; p < value.size() || p == 0; p += 255) {
    out += " \"" + value.substr(p, 255) + "\"";
  }
  return out;
}

}  // namespace sb::doctor
