#include "load/load_report.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/display_text.h"

namespace sb {

namespace {

using nlohmann::json;

double ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

json latency_json(const LatencyFigures& f) {
  return json{{"count", f.count}, {"p50", ms(f.p50)},       {"p90", ms(f.p90)},
              {"p99", ms(f.p99)}, {"p99_9", ms(f.p999)},    {"max", ms(f.max)},
              {"min", ms(f.min)}, {"mean", f.mean / 1000.0}};
}

// Server text may hold anything: invalid UTF-8 is replaced, not thrown on.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string fmt_ms(uint64_t us) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", ms(us));
  return b;
}

std::string latency_line(const LatencyFigures& f) {
  if (f.count == 0) return "-";
  return "p50 " + fmt_ms(f.p50) + "  p90 " + fmt_ms(f.p90) + "  p99 " + fmt_ms(f.p99) + "  p99.9 " +
         fmt_ms(f.p999) + "  max " + fmt_ms(f.max) + " ms";
}

}  // namespace

std::string second_json(const SecondReport& r) {
  json j{{"type", "second"},
         {"t", r.second},
         {"warmup", r.warmup},
         {"rate", r.rate},
         {"completed", r.completed},
         {"errors", r.errors},
         {"connections", r.open_connections},
         {"in_flight", r.in_flight},
         {"backlog", r.backlog},
         {"latency_ms", latency_json(r.latency)}};
  if (r.asked_rate > 0) j["asked_rate"] = r.asked_rate;
  return dump(j);
}

std::string second_text(const SecondReport& r) {
  char head[160];
  std::snprintf(
      head, sizeof head, "%4llus%s %9.1f msgs/s%s  conns %llu  backlog %llu  errors %llu  ",
      static_cast<unsigned long long>(r.second), r.warmup ? " warm-up" : "", r.rate,
      r.asked_rate > 0 ? (" of " + std::to_string(static_cast<long long>(r.asked_rate))).c_str()
                       : "",
      static_cast<unsigned long long>(r.open_connections),
      static_cast<unsigned long long>(r.backlog), static_cast<unsigned long long>(r.errors));
  return head + latency_line(r.latency);
}

std::string summary_json(const LoadSummary& s) {
  json replies = json::object();
  for (const auto& [code, n] : s.replies) replies[std::to_string(code)] = n;
  json errors = json::object();
  for (const ErrorCount& e : s.errors)
    errors[e.kind] = json{{"count", e.count}, {"example", e.example}};
  json j{{"type", "summary"},
         {"mode", s.open_loop ? "open" : "closed"},
         {"achieved_rate", s.achieved_rate},
         {"elapsed_s", s.elapsed_s},
         {"messages",
          {{"planned", s.planned},
           {"started", s.started},
           {"completed", s.completed},
           {"sent", s.sent},
           {"failed", s.failed},
           {"not_started", s.not_started},
           {"warmup", s.warmup}}},
         {"recipients_sent", s.recipients_sent},
         {"bytes", s.bytes},
         {"latency_ms", latency_json(s.latency)},
         {"connect_ms", latency_json(s.connect)},
         {"tls_handshake_ms", latency_json(s.tls)},
         {"connections",
          {{"opened", s.connections_opened},
           {"failed", s.connections_failed},
           {"max_open", s.max_open}}},
         {"replies", replies},
         {"errors", errors},
         {"errors_total", s.errors_total},
         {"rate_met", s.rate_met},
         {"workers", s.workers},
         {"exit", s.exit_code}};
  j["asked_rate"] = s.open_loop ? json(s.asked_rate) : json(nullptr);
  if (!s.failure.empty()) j["failure"] = s.failure;
  if (s.interrupted) j["interrupted"] = true;
  return dump(j);
}

std::string summary_text(const LoadSummary& s) {
  char b[256];
  std::string o;
  if (s.open_loop) {
    std::snprintf(b, sizeof b, "rate:         %.1f msgs/s achieved of %.1f asked (%s)\n",
                  s.achieved_rate, s.asked_rate, s.rate_met ? "met, within 1%" : "NOT met");
  } else {
    std::snprintf(b, sizeof b, "rate:         %.1f msgs/s (closed loop, as fast as taken)\n",
                  s.achieved_rate);
  }
  o += b;
  std::snprintf(b, sizeof b,
                "messages:     %llu sent, %llu failed, %llu not started, over %.2f s "
                "(+%llu in the warm-up)\n",
                static_cast<unsigned long long>(s.sent), static_cast<unsigned long long>(s.failed),
                static_cast<unsigned long long>(s.not_started), s.elapsed_s,
                static_cast<unsigned long long>(s.warmup));
  o += b;
  o += "latency:      " + latency_line(s.latency) + "\n";
  o += "connect:      " + latency_line(s.connect) + "\n";
  if (s.tls.count != 0) o += "TLS:          " + latency_line(s.tls) + "\n";
  std::snprintf(b, sizeof b, "connections:  %llu opened, %llu failed\n",
                static_cast<unsigned long long>(s.connections_opened),
                static_cast<unsigned long long>(s.connections_failed));
  o += b;
  o += "replies:     ";
  if (s.replies.empty()) o += " none";
  for (const auto& [code, n] : s.replies)
    o += " " + std::to_string(code) + " x" + std::to_string(n);
  o += "\n";
  if (s.errors.empty()) {
    o += "errors:       none\n";
  } else {
    for (const ErrorCount& e : s.errors) {
      o += "error:        " + e.kind + " x" + std::to_string(e.count) + ": " +
           display_escape(e.example) + "\n";
    }
  }
  return o;
}

}  // namespace sb
