// `smtpblast report`: what a task (and its accounting log) says about a mailing, and that as
// one self-contained HTML page with inline SVG charts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "report/svg_chart.h"
#include "store/task_store.h"

namespace sb {

struct ReportOptions {
  std::string task_path;
  std::string accounting_path;  // "" = draw the time charts from the task's last outcomes
  size_t top_destinations = 20;
  size_t max_buckets = kDefaultMaxBuckets;
};

// The outcomes drawn over time, in stacking order.
enum OutcomeIndex : size_t {
  kOutSent,
  kOutDeferred,
  kOutFailed,
  kOutBounced,
  kOutComplained,
  kOutSuppressed,
  // What an SMS's delivery receipt made of it (statuses 10-12); drawn for SMS tasks only.
  kOutDelivered,
  kOutUndeliverable,
  kOutExpired,
  kOutcomeCount
};
const char* outcome_name(size_t i);
using OutcomeCounts = std::array<uint64_t, kOutcomeCount>;

struct DestinationRow {
  // The recipients' domain, or an SMS task's country calling code ("+44"); from data: escape
  // when shown.
  std::string name;
  uint64_t sent = 0, deferred = 0, failed = 0;
};

struct ReportData {
  std::string task_path;
  std::string accounting_path;  // "" when the charts come from the task
  bool sms = false;             // an SMS task: keyed by phone numbers, with receipt statuses
  StatusCounts status;          // the task's counts, as `status --json` gives them
  // Time charts: one OutcomeCounts per bucket. From the accounting log, one count per
  // attempt; from the task, one per recipient at the time of its last outcome.
  int64_t first_s = 0, last_s = 0;  // 0 when nothing was attempted
  TimeAxis axis;
  std::vector<OutcomeCounts> buckets;
  uint64_t attempts = 0;       // accounting rows read (0 from the task)
  uint64_t skipped_lines = 0;  // accounting lines that were not a record (a cut last line)
  std::vector<std::pair<std::string, uint64_t>> codes;    // "550" -> count, by count
  std::vector<std::pair<std::string, uint64_t>> classes;  // bounce class -> count, by count
  std::string classes_source;                // where the classes come from, for the page
  std::vector<DestinationRow> destinations;  // top N by attempts
  DestinationRow other;                      // the rest, added up
  uint64_t destination_count = 0;            // distinct domains (a lower bound when capped)
  bool destinations_capped = false;          // too many distinct domains to count each
  std::vector<std::pair<std::string, std::string>> settings;  // label -> value
  std::vector<std::pair<std::string, std::string>> throttle;  // key -> value (last run)
};

// Reads the task (read-only) and the accounting log, aggregating in SQL and in one streaming
// pass per file, so memory does not grow with the number of recipients. Errors name the file:
// a missing or unreadable task is kStore/kInput, an unreadable accounting log kInput.
Result<ReportData> collect_report(const ReportOptions& options);

// The page: one HTML document, CSS inline, no script, no external resource.
std::string render_report_html(const ReportData& data);

// Parses "2024-05-01T12:34:56.789Z" (the accounting log's time) into ms since the epoch.
bool parse_iso_utc_ms(std::string_view s, int64_t& ms);
// Splits one CSV line (RFC 4180 quoting, no line breaks inside: the log never writes any).
std::vector<std::string> split_csv_line(std::string_view line);

}  // namespace sb
