// The text format, written once.
#include "metrics/exposition.h"

#include <cassert>
#include <cmath>
#include <cstdio>

namespace sb::metrics {

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    // The shortest form that reads back the same (0.1, not 0.10000000000000001).
    for (int p = 1; p < 17; ++p) {
      char s[40];
      std::snprintf(s, sizeof s, "%.*g", p, v);
      if (std::strtod(s, nullptr) == v) {
        return s;
      }
    }
  }
  return buf;
}

bool valid_name(std::string_view name, bool label) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (c == ':' && !label) || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void Exposition::family(std::string_view name, Type type, std::string_view help) {
  assert(valid_name(name));
  out_.append("# HELP ").append(name).append(" ").append(escape_help(help)).append("\n");
  out_.append("# TYPE ").append(name).append(" ");
  out_.append(type == Type::kCounter ? "counter" : type == Type::kGauge ? "gauge" : "histogram");
  out_.append("\n");
}

void Exposition::series(std::string_view name, std::string_view suffix, Labels labels,
                        const Label* extra) {
  out_.append(name).append(suffix);
  if (labels.size() == 0 && extra == nullptr) {
    out_.append(" ");
    return;
  }
  out_.append("{");
  bool first = true;
  auto put = [&](const Label& l) {
    assert(valid_name(l.first, true));
    if (!first) out_.append(",");
    first = false;
    out_.append(l.first).append("=\"").append(escape_label_value(l.second)).append("\"");
  };
  for (const Label& l : labels) put(l);
  if (extra != nullptr) put(*extra);
  out_.append("} ");
}

void Exposition::sample(std::string_view name, Labels labels, uint64_t v) {
  series(name, "", labels);
  out_.append(std::to_string(v)).append("\n");
}

void Exposition::sample_signed(std::string_view name, Labels labels, int64_t v) {
  series(name, "", labels);
  out_.append(std::to_string(v)).append("\n");
}

void Exposition::sample(std::string_view name, Labels labels, double v) {
  series(name, "", labels);
  out_.append(format_value(v)).append("\n");
}

void Exposition::histogram(std::string_view name, Labels labels, const HistogramCounts& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i];
    std::string le = i < h.bounds.size() ? format_value(static_cast<double>(h.bounds[i]) / 1e6)
                                         : std::string("+Inf");
    Label l{"le", le};
    series(name, "_bucket", labels, &l);
    out_.append(std::to_string(cumulative)).append("\n");
  }
  series(name, "_sum", labels);
  out_.append(format_value(static_cast<double>(h.sum_us) / 1e6)).append("\n");
  series(name, "_count", labels);
  out_.append(std::to_string(cumulative)).append("\n");
}

}  // namespace sb::metrics
