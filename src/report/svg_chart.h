// Charts as inline SVG for `smtpblast report`: time series, stacked bars and labelled bars.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

// Text for HTML and SVG (element content and quoted attributes alike): & < > " ' become
// entities, and an octet that is not valid UTF-8 becomes U+FFFD, so a recipient's or a
// server's text can never open a tag or end an attribute. (message/encode.h's
// append_html_escaped is for mail bodies, whose text is ours and already valid.)
std::string html_text(std::string_view s);
void append_html_text(std::string& out, std::string_view s);

// The width of a time bucket for a span of `span_s` seconds: the smallest of 1, 2, 5, 10,
// 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1 h that gives at most `max_buckets` buckets; beyond
// that whole hours (a multi-day run), so the number of buckets stays bounded.
inline constexpr size_t kDefaultMaxBuckets = 240;
int64_t choose_bucket_seconds(int64_t span_s, size_t max_buckets = kDefaultMaxBuckets);

// "1 s", "5 min", "1 h", "6 h".
std::string describe_bucket(int64_t bucket_s);

// Axis ticks from 0 to at least `max_value`: 0, step, 2*step, ... with step 1, 2 or 5 times a
// power of ten, at most about `target` ticks. max_value <= 0 gives {0, 1}.
std::vector<double> nice_ticks(double max_value, int target = 5);

// Buckets along the time axis: bucket i covers [start_s + i*bucket_s, +bucket_s).
struct TimeAxis {
  int64_t start_s = 0;  // unix seconds
  int64_t bucket_s = 1;
  size_t count = 0;
};

struct Series {
  std::string name;
  std::string color;           // a CSS colour, from our code (not data)
  std::vector<double> values;  // one per bucket of the axis
};

struct Bar {
  std::string label;  // from data: escaped when drawn
  double value = 0;
};

// Every chart is one <svg class="chart" data-chart="ID"> with a <title>, axes and a legend.
// Empty data (no buckets or bars, or a time series all zero) gives the same frame with a "no
// data" note, so the page's layout does not depend on what happened; bars that are all zero
// are drawn as labelled zeros (nothing happened is a result).

// Lines (<path>, one per series) over time; a single bucket is drawn as a dot (<circle>).
std::string line_chart(std::string_view id, std::string_view title, const TimeAxis& axis,
                       const std::vector<Series>& series, std::string_view y_label);
// Stacked bars over time: one <rect> per bucket and series with a non-zero value.
std::string stacked_bar_chart(std::string_view id, std::string_view title, const TimeAxis& axis,
                              const std::vector<Series>& series, std::string_view y_label);
// Horizontal bars, one <rect> per bar, in the order given, labelled with the value.
std::string bar_chart(std::string_view id, std::string_view title, const std::vector<Bar>& bars,
                      std::string_view color);

// "12:34:56" within a day, else "05-01 12:34" (UTC): for axis labels.
std::string axis_time_label(int64_t t_s, int64_t span_s);
// "2024-05-01 12:34:56 UTC".
std::string utc_time(int64_t t_s);

}  // namespace sb
