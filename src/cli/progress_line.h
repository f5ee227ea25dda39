// The run's progress as a person or a pipeline reads it: the terminal bar, the log line, JSONL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "engine/events.h"
#include "engine/run_config.h"

namespace sb {

// --progress auto|bar|plain|jsonl|none. auto: the bar on a terminal, else plain.
Result<ProgressStyle> parse_progress_style(std::string_view value, bool stderr_tty);

// The figures every form shows, derived once from the engine's view.
struct ProgressFigures {
  double seconds = 0;
  uint64_t sent = 0, failed = 0, deferred = 0, attempts = 0;
  bool counted = false;  // the recipients to do are known (else no left, no bar, no ETA)
  uint64_t left = 0;     // not finished: to do minus sent and failed (deferred ones included)
  uint64_t untried = 0;  // left minus the deferred: the bar's last segment
  double msgs_per_s = 0;
  double eta_s = -1;  // < 0: unknown (nothing sent yet, or not counted)
};
ProgressFigures progress_figures(const ProgressView& p);

// "45s", "4m05s", "2h10m", "3d04h"; "-" for a negative (unknown) time.
std::string eta_text(double seconds);

// The terminal line, without control codes and at most `columns - 1` characters (a full-width
// line would wrap and break the redraw):
//   [########x~~~..........] 45% sent 450 failed 3 deferred 12 left 535  30 msgs/s  ETA 18s
// '#' sent, 'x' failed, '~' deferred, '.' not tried yet; a non-zero count gets at least one
// cell. Narrower terminals lose the bar first, then the words, then the tail.
std::string progress_bar_line(const ProgressView& p, int columns);

// The log line (no terminal): "progress: 40 s: 1200 recipients sent, 3 failed, ...".
std::string progress_plain_line(const ProgressView& p);

// One JSONL object: seconds, sent, failed, deferred, attempts, left, msgs_per_s, eta_s (left
// and eta_s null when unknown), and "final": true on the last one.
nlohmann::ordered_json progress_json(const ProgressView& p, bool final_line);

// The terminal's width (stderr, else stdout or stdin, else $COLUMNS, else 80).
int terminal_columns();

}  // namespace sb
