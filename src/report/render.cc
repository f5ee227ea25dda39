// The report page: one HTML document with inline CSS and SVG; every data string escaped.
#include <algorithm>
#include <cstdio>

#include "base/display_text.h"
#include "report/report.h"

namespace sb {

namespace {

// Colours per outcome (kOutSent ...), chosen to be told apart in print too.
constexpr const char* kOutcomeColor[kOutcomeCount] = {"#2e7d32", "#f9a825", "#c62828",
                                                      "#6a1b9a", "#ad1457", "#607d8b",
                                                      "#00838f", "#4e342e", "#9e9d24"};

// The outcomes a task's charts show: an e-mail task never has the SMS receipt statuses.
size_t outcomes_shown(const ReportData& d) { return d.sms ? kOutcomeCount : kOutDelivered; }

constexpr const char* kStyle = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 13px; }
svg.chart { display: block; margin: 8px 0; max-width: 100%; height: auto; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #333; }
svg.chart text.title { font-size: 14px; font-weight: bold; }
svg.chart text.nodata { fill: #999; font-size: 16px; }
svg.chart line.grid { stroke: #e5e5e5; } svg.chart line.axisline { stroke: #888; }
)css";

std::string num(uint64_t n) { return group_thousands(n); }

void row(std::string& out, std::string_view key, std::string_view label, std::string_view value,
         bool numeric) {
  out += "<tr><th>";
  append_html_text(out, label);
  out += numeric ? "</th><td class=\"n\" data-key=\"" : "</th><td data-key=\"";
  append_html_text(out, key);
  out += "\">";
  append_html_text(out, value);
  out += "</td></tr>";
}

void summary(std::string& out, const ReportData& d) {
  out += "<h2>Recipients by status</h2><table id=\"summary\">";
  row(out, "total", "total", std::to_string(d.status.total), true);
  const RcptStatus all[] = {RcptStatus::kUnsent,  RcptStatus::kSent,       RcptStatus::kDeferred,
                            RcptStatus::kFailed,  RcptStatus::kSuppressed, RcptStatus::kInFlight,
                            RcptStatus::kBounced, RcptStatus::kComplained};
  for (RcptStatus s : all) {
    std::string key = status_name(s);  // the keys of `status --json`
    std::replace(key.begin(), key.end(), '-', '_');
    row(out, key, status_name(s), std::to_string(d.status.get(s)), true);
  }
  // What the delivery receipts made of sent SMS (the keys `status --json` adds for them).
  for (RcptStatus s : {RcptStatus::kDelivered, RcptStatus::kUndeliverable, RcptStatus::kExpired}) {
    if (d.sms || d.status.get(s) > 0) {
      row(out, status_name(s), status_name(s), std::to_string(d.status.get(s)), true);
    }
  }
  if (d.status.unknown > 0) row(out, "unknown", "unknown", std::to_string(d.status.unknown), true);
  out += "</table>";
}

void time_charts(std::string& out, const ReportData& d) {
  const double per = static_cast<double>(d.axis.bucket_s);
  std::vector<Series> rate = {{"sent / s", kOutcomeColor[kOutSent], {}},
                              {"all outcomes / s", "#1565c0", {}}};
  std::vector<Series> stacked;
  const size_t shown = outcomes_shown(d);
  for (size_t o = 0; o < shown; ++o) {
    stacked.push_back({outcome_name(o), kOutcomeColor[o], {}});
  }
  for (const OutcomeCounts& b : d.buckets) {
    uint64_t all = 0;
    for (size_t o = 0; o < shown; ++o) {
      all += b[o];
      stacked[o].values.push_back(static_cast<double>(b[o]));
    }
    // An SMS a receipt settled later was sent all the same.
    uint64_t sent = b[kOutSent];
    if (d.sms) sent += b[kOutDelivered] + b[kOutUndeliverable] + b[kOutExpired];
    rate[0].values.push_back(static_cast<double>(sent) / per);
    rate[1].values.push_back(static_cast<double>(all) / per);
  }
  out += "<h2>Over time</h2><p class=\"note\">";
  if (d.axis.count > 0) {
    out += "From " + utc_time(d.first_s) + " to " + utc_time(d.last_s) + ", in buckets of " +
           describe_bucket(d.axis.bucket_s) + ". ";
  }
  out += d.accounting_path.empty()
             ? "Each recipient counts once, at the time of its last outcome (the task keeps no "
               "earlier attempts; give --accounting for every attempt). Addresses rejected at "
               "import were never attempted: they are counted above, not here."
             : "Each attempt in the accounting log counts; bounces and complaints come from the "
               "task (recorded by `smtpblast returns`).";
  out += "</p>";
  out += line_chart("rate", "Messages per second", d.axis, rate, "per second");
  out += stacked_bar_chart("outcomes", "Outcomes per " + describe_bucket(d.axis.bucket_s), d.axis,
                           stacked, "count");
}

void bars(std::string& out, std::string_view id, std::string_view title,
          const std::vector<std::pair<std::string, uint64_t>>& v, std::string_view color,
          size_t cap = 25) {
  std::vector<Bar> b;
  uint64_t rest = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i < cap) {
      b.push_back({v[i].first, static_cast<double>(v[i].second)});
    } else {
      rest += v[i].second;
    }
  }
  if (rest > 0) b.push_back({"other", static_cast<double>(rest)});
  out += bar_chart(id, title, b, color);
}

void destinations(std::string& out, const ReportData& d) {
  // An SMS task's key is a phone number: its destinations are country calling codes.
  out += "<h2>Destinations</h2><p class=\"note\">";
  out += d.sms ? "By the phone numbers' country calling code" : "By the recipients' domain";
  out += d.accounting_path.empty() ? " (each recipient by its current status"
                                   : " (each attempt in the accounting log";
  if (d.sms && d.accounting_path.empty())
    out += "; sent includes delivered, undeliverable and expired";
  out += "); " + num(d.destination_count) + (d.sms ? " country codes" : " domains");
  if (d.destinations_capped) out += " counted one by one, the rest under \"other\"";
  out += ".</p><table id=\"destinations\"><tr><th>";
  out += d.sms ? "phone" : "domain";
  out += "</th><th>sent</th><th>deferred</th><th>failed</th></tr>";
  auto line = [&](const DestinationRow& r, bool other) {
    out += other ? "<tr class=\"other\"><td><i>" : "<tr><td>";
    append_html_text(out, !r.name.empty() ? r.name : d.sms ? "(no country code)" : "(no domain)");
    out += other ? "</i></td>" : "</td>";
    for (uint64_t n : {r.sent, r.deferred, r.failed}) out += "<td class=\"n\">" + num(n) + "</td>";
    out += "</tr>";
  };
  for (const DestinationRow& r : d.destinations) line(r, false);
  if (d.other.sent + d.other.deferred + d.other.failed > 0) line(d.other, true);
  out += "</table>";
}

void throttle(std::string& out, const ReportData& d) {
  out += "<h2>Throttle and quota (last run)</h2>";
  if (d.throttle.empty()) {
    out +=
        "<p class=\"note\">The task holds no throttle counters (no run has finished with "
        "them).</p>";
  }
  std::vector<Bar> events;
  for (const char* k : {"pushbacks", "slowdowns", "quota_replies", "quota_pauses", "rate_cuts"}) {
    for (const auto& [key, v] : d.throttle) {
      if (key == k) events.push_back({key, std::atof(v.c_str())});
    }
  }
  out += bar_chart("throttle", "Throttle events", events, "#ef6c00");
  double limit = 0, count = 0;
  for (const auto& [key, v] : d.throttle) {
    if (key == "daily_limit") limit = std::atof(v.c_str());
    if (key == "daily_count") count = std::atof(v.c_str());
  }
  std::vector<Bar> quota;
  if (limit > 0) quota = {{"used today", count}, {"left today", std::max(limit - count, 0.0)}};
  out += bar_chart("quota", "Daily quota", quota, "#00838f");
  if (limit <= 0 && !d.throttle.empty()) out += "<p class=\"note\">No daily limit was set.</p>";
  if (!d.throttle.empty()) {
    out += "<table id=\"throttle\">";
    for (const auto& [k, v] : d.throttle) row(out, k, k, v, false);
    out += "</table>";
  }
}

void settings(std::string& out, const ReportData& d) {
  out += "<h2>Settings of the run</h2><table id=\"settings\">";
  row(out, "task", "task file", d.task_path, false);
  row(out, "source", "time charts from",
      d.accounting_path.empty() ? "the task (last outcome per recipient)"
                                : "accounting log " + d.accounting_path,
      false);
  for (const auto& [k, v] : d.settings) row(out, k, k, v.empty() ? "none" : v, false);
  out += "</table>";
}

}  // namespace

std::string render_report_html(const ReportData& d) {
  std::string out;
  out.reserve(64 * 1024);
  std::string title = "smtpblast report: " + d.task_path;
  for (const auto& [k, v] : d.settings) {
    if (k == "title" && !v.empty()) title = "smtpblast report: " + v;
  }
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; img-src data:\"><title>";
  append_html_text(out, title);
  out += "</title><style>";
  out += kStyle;
  out += "</style></head><body><h1>";
  append_html_text(out, title);
  out += "</h1><p class=\"note\">Data: ";
  if (d.accounting_path.empty()) {
    out += "the task file (no accounting log given).";
  } else {
    out += "the accounting log ";
    append_html_text(out, d.accounting_path);
    out += " (" + num(d.attempts) + " attempts";
    if (d.skipped_lines > 0) out += ", " + num(d.skipped_lines) + " lines not readable as records";
    out += ") and the task file.";
  }
  out += "</p>";
  summary(out, d);
  time_charts(out, d);
  out += "<h2>Replies</h2><p class=\"note\">";
  out += d.accounting_path.empty()
             ? "Reply codes: each attempted recipient's last reply (\"none\": no reply)."
             : "Reply codes: every attempt (\"none\": no reply).";
  out += " Classes: ";
  append_html_text(out, d.classes_source);
  out += ".</p>";
  bars(out, "codes", "Reply codes", d.codes, "#1565c0");
  bars(out, "classes", "Bounce classes", d.classes, "#c62828");
  destinations(out, d);
  throttle(out, d);
  settings(out, d);
  out += "</body></html>\n";
  return out;
}

}  // namespace sb
