// Exposition: the Prometheus text format 0.0.4 (# HELP, # TYPE, samples with escaped label
// values, histograms as _bucket{le}/_sum/_count), written into one string per scrape.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "metrics/cells.h"

namespace sb::metrics {

// The media type of what Exposition writes (the Content-Type of a scrape's answer).
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

using Label = std::pair<std::string_view, std::string_view>;
using Labels = std::initializer_list<Label>;

enum class Type { kCounter, kGauge, kHistogram };

class Exposition {
 public:
  // Starts a family: one # HELP and one # TYPE line. Every sample of the family follows
  // before the next family starts (the format requires it).
  void family(std::string_view name, Type type, std::string_view help);
  void sample(std::string_view name, Labels labels, uint64_t v);
  void sample_signed(std::string_view name, Labels labels, int64_t v);
  void sample(std::string_view name, Labels labels, double v);
  // A histogram family's series for one label set: cumulative _bucket lines with le (the last
  // le="+Inf"), then _sum in seconds and _count.
  void histogram(std::string_view name, Labels labels, const HistogramCounts& h);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void series(std::string_view name, std::string_view suffix, Labels labels,
              const Label* extra = nullptr);
  std::string out_;
};

// A label value with \ " and newline escaped as the format says.
std::string escape_label_value(std::string_view v);
// HELP text: \ and newline escaped.
std::string escape_help(std::string_view v);
// A sample value: integers without an exponent, +Inf, -Inf, NaN.
std::string format_value(double v);
// True for a metric or label name the format accepts ([a-zA-Z_:][a-zA-Z0-9_:]*; labels
// without ':').
bool valid_name(std::string_view name, bool label = false);

}  // namespace sb::metrics
