// Progress forms: figures from the engine's view, the bar line, the log line, JSONL objects.
#include "cli/progress_line.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sb {

Result<ProgressStyle> parse_progress_style(std::string_view value, bool stderr_tty) {
  if (value.empty() || value == "auto") {
    return stderr_tty ? ProgressStyle::kBar : ProgressStyle::kPlain;
  }
  if (value == "bar") return ProgressStyle::kBar;
  if (value == "plain") return ProgressStyle::kPlain;
  if (value == "jsonl") return ProgressStyle::kJsonl;
  if (value == "none") return ProgressStyle::kNone;
  return make_error(ErrDomain::kConfig, "'" + std::string(value).substr(0, 40) +
                                            "' is not one of auto, bar, plain, jsonl, none");
}

ProgressFigures progress_figures(const ProgressView& p) {
  ProgressFigures f;
  f.seconds = p.seconds;
  f.sent = p.sent;
  f.failed = p.failed;
  f.deferred = p.deferred;
  f.attempts = p.attempts;
  f.msgs_per_s = p.seconds > 0 ? static_cast<double>(p.sent) / p.seconds : 0;
  f.counted = p.todo > 0;
  if (f.counted) {
    const uint64_t finished = p.sent + p.failed;
    f.left = p.todo > finished ? p.todo - finished : 0;
    f.untried = f.left > p.deferred ? f.left - p.deferred : 0;
    if (f.left == 0) {
      f.eta_s = 0;
    } else if (f.msgs_per_s > 0) {
      f.eta_s = static_cast<double>(f.left) / f.msgs_per_s;
    }
  }
  return f;
}

std::string eta_text(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "-";
  const auto s = static_cast<uint64_t>(std::llround(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s % 86400 / 3600));
  }
  return buf;
}

namespace {

using ull = unsigned long long;

// Cells per segment: proportional (largest remainder), every non-zero count at least one cell
// so a single failure among a million is still seen, the total exactly `width`.
std::array<int, 4> segment_cells(const std::array<uint64_t, 4>& counts, int width) {
  std::array<int, 4> cells{};
  uint64_t total = 0;
  int nonzero = 0;
  for (uint64_t c : counts) {
    total += c;
    nonzero += c > 0 ? 1 : 0;
  }
  if (total == 0 || width <= 0) return cells;
  if (width < nonzero) width = nonzero;  // callers give at least 4
  std::array<double, 4> rest{};
  int used = 0;
  for (size_t i = 0; i < 4; ++i) {
    const double exact = static_cast<double>(counts[i]) * width / static_cast<double>(total);
    cells[i] = static_cast<int>(exact);
    rest[i] = exact - cells[i];
    used += cells[i];
  }
  while (used < width) {
    size_t best = 0;
    for (size_t i = 1; i < 4; ++i) {
      if (rest[i] > rest[best]) best = i;
    }
    ++cells[best];
    rest[best] = -1;
    ++used;
  }
  // The minimum of one cell, taken from the widest segment.
  for (size_t i = 0; i < 4; ++i) {
    if (counts[i] > 0 && cells[i] == 0) {
      size_t widest =
          static_cast<size_t>(std::max_element(cells.begin(), cells.end()) - cells.begin());
      --cells[widest];
      cells[i] = 1;
    }
  }
  return cells;
}

std::string fit(std::string s, int columns) {
  const size_t max = columns > 1 ? static_cast<size_t>(columns - 1) : 0;
  if (s.size() > max) s.resize(max);
  return s;
}

}  // namespace

std::string progress_bar_line(const ProgressView& p, int columns) {
  const ProgressFigures f = progress_figures(p);
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.0f msgs/s", f.msgs_per_s);
  const std::string eta = f.counted ? eta_text(f.eta_s) : "-";
  std::string words = "sent " + std::to_string(f.sent) + " failed " + std::to_string(f.failed) +
                      " deferred " + std::to_string(f.deferred);
  if (f.counted) words += " left " + std::to_string(f.left);
  words += std::string("  ") + rate + "  ETA " + eta;
  if (!f.counted) return fit(words, columns);

  const uint64_t todo = f.sent + f.failed + f.left;
  const int pct = todo > 0 ? static_cast<int>((f.sent + f.failed) * 100 / todo) : 100;
  const std::string tail = std::to_string(pct) + "% " + words;
  constexpr int kMinBar = 10, kMaxBar = 40;
  const int room = columns - 1 - static_cast<int>(tail.size()) - 3;  // "[" "] "
  if (room >= kMinBar) {
    const int width = std::min(room, kMaxBar);
    const std::array<int, 4> cells =
        segment_cells({f.sent, f.failed, f.deferred, f.untried}, width);
    std::string bar = "[";
    constexpr std::array<char, 4> kGlyph = {'#', 'x', '~', '.'};
    for (size_t i = 0; i < 4; ++i) bar.append(static_cast<size_t>(cells[i]), kGlyph[i]);
    return bar + "] " + tail;
  }
  if (static_cast<int>(tail.size()) < columns) return tail;
  // Narrow: figures only, in the bar's order, "450/3/12/535 30/s ETA 18s".
  char brief[128];
  std::snprintf(brief, sizeof brief, "%d%% %llu/%llu/%llu/%llu %.0f/s ETA %s", pct, ull(f.sent),
                ull(f.failed), ull(f.deferred), ull(f.left), f.msgs_per_s, eta.c_str());
  return fit(brief, columns);
}

std::string progress_plain_line(const ProgressView& p) {
  const ProgressFigures f = progress_figures(p);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "progress: %.0f s: %llu recipients sent, %llu failed, %llu deferred; "
                "%llu attempts; %.0f msgs/s; %llu left; ETA %s",
                f.seconds, ull(f.sent), ull(f.failed), ull(f.deferred), ull(f.attempts),
                f.msgs_per_s, ull(f.left),
                f.counted && f.left > 0 ? eta_text(f.eta_s).c_str() : "-");
  return buf;
}

nlohmann::ordered_json progress_json(const ProgressView& p, bool final_line) {
  const ProgressFigures f = progress_figures(p);
  nlohmann::ordered_json j;  // in the documented order, for a person reading the stream
  j["seconds"] = std::round(f.seconds * 1000) / 1000;
  j["sent"] = f.sent;
  j["failed"] = f.failed;
  j["deferred"] = f.deferred;
  j["attempts"] = f.attempts;
  j["left"] = f.counted ? nlohmann::ordered_json(f.left) : nlohmann::ordered_json(nullptr);
  j["msgs_per_s"] = std::round(f.msgs_per_s * 10) / 10;
  j["eta_s"] = f.eta_s >= 0 ? nlohmann::ordered_json(std::llround(f.eta_s))
                            : nlohmann::ordered_json(nullptr);
  if (final_line) j["final"] = true;
  return j;
}

int terminal_columns() {
  for (int fd : {STDERR_FILENO, STDOUT_FILENO, STDIN_FILENO}) {
    winsize ws{};
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  }
  if (const char* c = std::getenv("COLUMNS"); c != nullptr) {
    const int n = std::atoi(c);
    if (n > 0 && n < 10000) return n;
  }
  return 80;
}

}  // namespace sb
