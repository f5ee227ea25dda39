// Doctor report: one row per check (PASS/WARN/FAIL), its evidence and the fix to apply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sb::doctor {

enum class Verdict : uint8_t { kPass, kWarn, kFail };
const char* verdict_name(Verdict v);  // "PASS", "WARN", "FAIL"

struct Row {
  std::string check;    // the check family: "spf", "dkim", "dmarc", "ptr", "mx", ...
  std::string subject;  // what was checked: a domain, "example.com for 192.0.2.1", a header
  Verdict verdict = Verdict::kPass;
  std::string evidence;  // what was found (a record, an answer, a count)
  std::string expected;  // what a receiver wants to find
  std::string fix;       // WARN/FAIL: the record to publish in zone-file syntax, or the change
};

struct Report {
  std::vector<Row> rows;

  void add(Row r) { rows.push_back(std::move(r)); }
  void add(std::vector<Row> rs) {
    for (Row& r : rs) rows.push_back(std::move(r));
  }
  bool failed() const;
  size_t count(Verdict v) const;
  // 0 when no row fails, 1 otherwise (the CLI's exit code).
  int exit_code() const { return failed() ? 1 : 0; }
  // One block per row for a terminal; then a summary line.
  std::string text() const;
  // {"rows":[{check,subject,verdict,evidence,expected,fix}],"pass":N,"warn":N,"fail":N}
  std::string json() const;
};

// A TXT record in zone-file syntax, the value split into strings of at most 255 octets:
// `name. 3600 IN TXT "..." "..."`.
std::string zone_txt(const std::string& name, const std::string& value);

}  // namespace sb::doctor
