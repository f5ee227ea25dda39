// Inline SVG charts: fixed geometry, every data string escaped, numbers with few digits.
#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "base/utf8.h"

namespace sb {

namespace {

constexpr int kWidth = 960;
constexpr int kHeight = 300;
constexpr int kLeft = 70;  // room for y tick labels
constexpr int kRight = 20;
constexpr int kTop = 40;     // title
constexpr int kBottom = 60;  // x tick labels and legend
constexpr int kPlotW = kWidth - kLeft - kRight;
constexpr int kPlotH = kHeight - kTop - kBottom;

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

// A tick or bar value: whole numbers without decimals, others with up to two.
std::string value_label(double v) {
  char buf[32];
  if (std::fabs(v - std::round(v)) < 1e-9) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", v);
    std::string s = buf;
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  return buf;
}

void open_svg(std::string& out, std::string_view id, std::string_view title, int height) {
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"";
  append_html_text(out, id);
  out += "\" width=\"" + std::to_string(kWidth) + "\" height=\"" + std::to_string(height) +
         "\" viewBox=\"0 0 " + std::to_string(kWidth) + " " + std::to_string(height) +
         "\" role=\"img\" aria-label=\"";
  append_html_text(out, title);
  out += "\"><title>";
  append_html_text(out, title);
  out += "</title><text class=\"title\" x=\"" + std::to_string(kLeft) + "\" y=\"24\">";
  append_html_text(out, title);
  out += "</text>";
}

void no_data(std::string& out, int height) {
  out += "<text class=\"nodata\" x=\"" + std::to_string(kWidth / 2) + "\" y=\"" +
         std::to_string(height / 2) + "\" text-anchor=\"middle\">no data</text>";
}

double series_max(const std::vector<Series>& series, bool stacked, size_t count) {
  double m = 0;
  for (size_t i = 0; i < count; ++i) {
    double sum = 0;
    for (const Series& s : series) {
      double v = i < s.values.size() ? s.values[i] : 0;
      if (stacked) {
        sum += v;
      } else {
        m = std::max(m, v);
      }
    }
    m = std::max(m, sum);
  }
  return m;
}

// Y grid with labels, the axes, and x labels at about six points along the time axis.
void time_axes(std::string& out, const TimeAxis& axis, const std::vector<double>& ticks,
               std::string_view y_label) {
  const double top = ticks.back();
  out += "<g class=\"axis y\">";
  for (double t : ticks) {
    double y = kTop + kPlotH - t / top * kPlotH;
    out += "<line x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(kLeft + kPlotW) +
           "\" y1=\"" + fmt(y) + "\" y2=\"" + fmt(y) + "\" class=\"grid\"/>";
    out += "<text x=\"" + std::to_string(kLeft - 6) + "\" y=\"" + fmt(y + 4) +
           "\" text-anchor=\"end\">" + value_label(t) + "</text>";
  }
  out += "<text x=\"14\" y=\"" + std::to_string(kTop + kPlotH / 2) +
         "\" transform=\"rotate(-90 14 " + std::to_string(kTop + kPlotH / 2) +
         ")\" text-anchor=\"middle\">";
  append_html_text(out, y_label);
  out += "</text></g><g class=\"axis x\">";
  out += "<line x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(kLeft + kPlotW) +
         "\" y1=\"" + std::to_string(kTop + kPlotH) + "\" y2=\"" + std::to_string(kTop + kPlotH) +
         "\" class=\"axisline\"/>";
  const int64_t span = axis.bucket_s * static_cast<int64_t>(axis.count);
  const size_t labels = std::min<size_t>(axis.count, 6);
  for (size_t k = 0; k < labels; ++k) {
    size_t i = labels == 1 ? 0 : k * (axis.count - 1) / (labels - 1);
    double x = kLeft + (static_cast<double>(i) + 0.5) * kPlotW / static_cast<double>(axis.count);
    out += "<text x=\"" + fmt(x) + "\" y=\"" + std::to_string(kTop + kPlotH + 16) +
           "\" text-anchor=\"middle\">" +
           axis_time_label(axis.start_s + static_cast<int64_t>(i) * axis.bucket_s, span) +
           "</text>";
  }
  out += "</g>";
}

void legend(std::string& out, const std::vector<Series>& series) {
  out += "<g class=\"legend\">";
  int x = kLeft;
  const int y = kHeight - 16;
  for (const Series& s : series) {
    out += "<rect class=\"key\" x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y - 10) +
           "\" width=\"12\" height=\"12\" fill=\"";
    append_html_text(out, s.color);
    out += "\"/><text x=\"" + std::to_string(x + 16) + "\" y=\"" + std::to_string(y) + "\">";
    append_html_text(out, s.name);
    out += "</text>";
    x += 30 + 8 * static_cast<int>(std::min<size_t>(s.name.size(), 24));
  }
  out += "</g>";
}

}  // namespace

void append_html_text(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default:
          // Control characters are not allowed in HTML text: a space keeps words apart.
          out += (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f ? ' ' : static_cast<char>(c);
      }
      ++i;
      continue;
    }
    size_t n = utf8_len(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
}

std::string html_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_html_text(out, s);
  return out;
}

int64_t choose_bucket_seconds(int64_t span_s, size_t max_buckets) {
  static constexpr int64_t kSteps[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600};
  if (max_buckets == 0) max_buckets = 1;
  const int64_t span = std::max<int64_t>(span_s, 1);
  const auto fits = [&](int64_t b) {
    return static_cast<uint64_t>((span + b - 1) / b) <= max_buckets;
  };
  for (int64_t b : kSteps) {
    if (fits(b)) return b;
  }
  int64_t hours = (span + 3600 * static_cast<int64_t>(max_buckets) - 1) /
                  (3600 * static_cast<int64_t>(max_buckets));
  return std::max<int64_t>(hours, 1) * 3600;
}

std::string describe_bucket(int64_t b) {
  if (b % 3600 == 0) return std::to_string(b / 3600) + " h";
  if (b % 60 == 0) return std::to_string(b / 60) + " min";
  return std::to_string(b) + " s";
}

std::vector<double> nice_ticks(double max_value, int target) {
  if (!(max_value > 0) || !std::isfinite(max_value)) return {0, 1};
  if (target < 1) target = 1;
  double raw = max_value / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double f : {1.0, 2.0, 5.0, 10.0}) {
    step = f * mag;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (int i = 0;; ++i) {
    double t = step * i;
    ticks.push_back(t);
    if (t >= max_value - 1e-9 || i > 100) break;
  }
  if (ticks.size() < 2) ticks.push_back(step);
  return ticks;
}

std::string utc_time(int64_t t_s) {
  std::time_t t = static_cast<std::time_t>(t_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string axis_time_label(int64_t t_s, int64_t span_s) {
  std::time_t t = static_cast<std::time_t>(t_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, span_s <= 86400 ? "%H:%M:%S" : "%m-%d %H:%M", &tm);
  return buf;
}

namespace {

// The start both time charts share: the frame, then either the axes with their ticks (true)
// or "no data" and the closed SVG (false: nothing more to draw).
bool open_time_chart(std::string& out, std::string_view id, std::string_view title,
                     const TimeAxis& axis, const std::vector<Series>& series, bool stacked,
                     std::string_view y_label, std::vector<double>& ticks) {
  open_svg(out, id, title, kHeight);
  const double max = series_max(series, stacked, axis.count);
  if (axis.count == 0 || max <= 0) {
    no_data(out, kHeight);
    out += "</svg>";
    return false;
  }
  ticks = nice_ticks(max);
  time_axes(out, axis, ticks, y_label);
  return true;
}

}  // namespace

std::string line_chart(std::string_view id, std::string_view title, const TimeAxis& axis,
                       const std::vector<Series>& series, std::string_view y_label) {
  std::string out;
  std::vector<double> ticks;
  if (!open_time_chart(out, id, title, axis, series, false, y_label, ticks)) return out;
  const double top = ticks.back();
  const double slot = static_cast<double>(kPlotW) / static_cast<double>(axis.count);
  for (const Series& s : series) {
    out += "<g class=\"series\" data-series=\"";
    append_html_text(out, s.name);
    out += "\">";
    if (axis.count == 1) {
      double v = s.values.empty() ? 0 : s.values[0];
      out += "<circle cx=\"" + fmt(kLeft + slot / 2) + "\" cy=\"" +
             fmt(kTop + kPlotH - v / top * kPlotH) + "\" r=\"4\" fill=\"";
      append_html_text(out, s.color);
      out += "\"/>";
    } else {
      out += "<path fill=\"none\" stroke-width=\"2\" stroke=\"";
      append_html_text(out, s.color);
      out += "\" d=\"";
      for (size_t i = 0; i < axis.count; ++i) {
        double v = i < s.values.size() ? s.values[i] : 0;
        out += i == 0 ? "M" : " L";
        out += fmt(kLeft + (static_cast<double>(i) + 0.5) * slot) + " " +
               fmt(kTop + kPlotH - v / top * kPlotH);
      }
      out += "\"/>";
    }
    out += "</g>";
  }
  legend(out, series);
  out += "</svg>";
  return out;
}

std::string stacked_bar_chart(std::string_view id, std::string_view title, const TimeAxis& axis,
                              const std::vector<Series>& series, std::string_view y_label) {
  std::string out;
  std::vector<double> ticks;
  if (!open_time_chart(out, id, title, axis, series, true, y_label, ticks)) return out;
  const double top = ticks.back();
  const double slot = static_cast<double>(kPlotW) / static_cast<double>(axis.count);
  const double w = std::max(slot * 0.8, 0.5);
  std::vector<double> base(axis.count, 0);
  for (const Series& s : series) {
    out += "<g class=\"series\" data-series=\"";
    append_html_text(out, s.name);
    out += "\" fill=\"";
    append_html_text(out, s.color);
    out += "\">";
    for (size_t i = 0; i < axis.count && i < s.values.size(); ++i) {
      double v = s.values[i];
      if (v <= 0) continue;
      double h = v / top * kPlotH;
      double y = kTop + kPlotH - base[i] / top * kPlotH - h;
      out += "<rect x=\"" + fmt(kLeft + static_cast<double>(i) * slot + (slot - w) / 2) +
             "\" y=\"" + fmt(y) + "\" width=\"" + fmt(w) + "\" height=\"" + fmt(h) +
             "\" data-value=\"" + value_label(v) + "\"><title>";
      append_html_text(out, s.name);
      out += ": " + value_label(v) + "</title></rect>";
      base[i] += v;
    }
    out += "</g>";
  }
  legend(out, series);
  out += "</svg>";
  return out;
}

std::string bar_chart(std::string_view id, std::string_view title, const std::vector<Bar>& bars,
                      std::string_view color) {
  constexpr int kRow = 24;
  constexpr int kLabelW = 260;
  const int height = kTop + 20 + kRow * static_cast<int>(std::max<size_t>(bars.size(), 3));
  std::string out;
  open_svg(out, id, title, height);
  double max = 0;
  for (const Bar& b : bars) max = std::max(max, b.value);
  if (bars.empty()) {
    no_data(out, height);
    out += "</svg>";
    return out;
  }
  if (max <= 0) max = 1;  // all zero: the labels and their 0s still say what was counted
  const double plot_w = kWidth - kLabelW - 100;
  out += "<g class=\"bars\" fill=\"";
  append_html_text(out, color);
  out += "\">";
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const int y = kTop + 10 + static_cast<int>(i) * kRow;
    // A label longer than the column is cut (whole UTF-8 characters) and shown whole on hover.
    std::string shown = b.label;
    if (shown.size() > 36) {
      size_t cut = 33;
      while (cut > 0 && (static_cast<unsigned char>(shown[cut]) & 0xC0) == 0x80) --cut;
      shown = shown.substr(0, cut) + "...";
    }
    out += "<text x=\"" + std::to_string(kLabelW - 8) + "\" y=\"" + std::to_string(y + 15) +
           "\" text-anchor=\"end\">";
    append_html_text(out, shown);
    out += "<title>";
    append_html_text(out, b.label);
    out += "</title></text>";
    const double w = b.value > 0 ? std::max(b.value / max * plot_w, 1.0) : 0;
    // data-label and data-value let a test (or a script reading the page) check the numbers.
    out += "<rect x=\"" + std::to_string(kLabelW) + "\" y=\"" + std::to_string(y + 2) +
           "\" width=\"" + fmt(w) + "\" height=\"" + std::to_string(kRow - 6) + "\" data-label=\"";
    append_html_text(out, b.label);
    out += "\" data-value=\"" + value_label(b.value) + "\"/>";
    out += "<text class=\"value\" x=\"" + fmt(kLabelW + w + 6) + "\" y=\"" +
           std::to_string(y + 15) + "\">" + value_label(b.value) + "</text>";
  }
  out += "</g></svg>";
  return out;
}

}  // namespace sb
