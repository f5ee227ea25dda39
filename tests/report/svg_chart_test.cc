// Tests for the report's SVG charts, escaping, bucketing and the accounting log parsing.
#include "report/svg_chart.h"

#include <gtest/gtest.h>

#include <string>

#include "report/report.h"

namespace sb {
namespace {

size_t count(const std::string& s, std::string_view needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

TEST(HtmlEscape, EscapesMarkupAndQuotes) {
  EXPECT_EQ(html_text("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;");
}

TEST(HtmlEscape, InvalidUtf8AndControlsBecomeHarmless) {
  EXPECT_EQ(html_text("a\xff"
                      "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(html_text("a\x01\x7f"
                      "b"),
            "a  b");
  EXPECT_EQ(html_text("caf\xC3\xA9"), "caf\xC3\xA9");  // valid UTF-8 kept
}

TEST(Bucket, ChosenBySpan) {
  EXPECT_EQ(choose_bucket_seconds(0), 1);
  EXPECT_EQ(choose_bucket_seconds(1), 1);
  EXPECT_EQ(choose_bucket_seconds(240), 1);
  EXPECT_EQ(choose_bucket_seconds(241), 2);
  EXPECT_EQ(choose_bucket_seconds(3600), 15);
  EXPECT_EQ(choose_bucket_seconds(86400), 600);
  EXPECT_EQ(choose_bucket_seconds(240 * 3600), 3600);
  // Beyond 240 hours: whole hours, still at most 240 buckets.
  int64_t b = choose_bucket_seconds(30 * 86400);
  EXPECT_EQ(b % 3600, 0);
  EXPECT_LE((30 * 86400 + b - 1) / b, 240);
  EXPECT_EQ(choose_bucket_seconds(100, 10), 10);
}

TEST(Bucket, Describe) {
  EXPECT_EQ(describe_bucket(1), "1 s");
  EXPECT_EQ(describe_bucket(300), "5 min");
  EXPECT_EQ(describe_bucket(7200), "2 h");
}

TEST(Ticks, NiceSteps) {
  EXPECT_EQ(nice_ticks(0), (std::vector<double>{0, 1}));
  EXPECT_EQ(nice_ticks(10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  std::vector<double> t = nice_ticks(7.3, 5);
  EXPECT_GE(t.back(), 7.3);
  EXPECT_EQ(t.front(), 0);
}

TEST(LineChart, EmptyDataSaysSo) {
  std::string svg = line_chart("rate", "Rate", TimeAxis{}, {}, "per s");
  EXPECT_NE(svg.find("data-chart=\"rate\""), std::string::npos);
  EXPECT_NE(svg.find("no data"), std::string::npos);
  EXPECT_EQ(count(svg, "<path"), 0u);
  EXPECT_EQ(svg.rfind("</svg>"), svg.size() - 6);
}

TEST(LineChart, OnePointIsADot) {
  TimeAxis axis{1700000000, 1, 1};
  std::string svg = line_chart("rate", "Rate", axis, {{"sent", "#000", {3}}}, "per s");
  EXPECT_EQ(count(svg, "<circle"), 1u);
  EXPECT_EQ(count(svg, "<path"), 0u);
  EXPECT_EQ(svg.find("no data"), std::string::npos);
}

TEST(LineChart, OnePathPerSeriesWithAxis) {
  TimeAxis axis{1700000000, 10, 4};
  std::string svg = line_chart("rate", "Rate", axis,
                               {{"a", "#111", {1, 2, 3, 4}}, {"b", "#222", {0, 1, 0, 1}}}, "/s");
  EXPECT_EQ(count(svg, "<path"), 2u);
  EXPECT_NE(svg.find("class=\"axis y\""), std::string::npos);
  EXPECT_NE(svg.find("class=\"axis x\""), std::string::npos);
  EXPECT_NE(svg.find(">22:13:20<"), std::string::npos);  // 1700000000 in UTC
  EXPECT_EQ(count(svg, "M"), 2u);
  EXPECT_EQ(count(svg, " L"), 6u);
}

TEST(StackedBars, OneRectPerNonZeroValuePlusLegend) {
  TimeAxis axis{0 + 1700000000, 60, 3};
  std::string svg =
      stacked_bar_chart("outcomes", "Outcomes", axis,
                        {{"sent", "#0a0", {5, 0, 2}}, {"failed", "#a00", {1, 1, 0}}}, "count");
  // 4 bars + 2 legend keys.
  EXPECT_EQ(count(svg, "<rect"), 6u);
  EXPECT_EQ(count(svg, "<rect class=\"key\""), 2u);
}

TEST(BarChart, HostileLabelsAreEscaped) {
  std::string svg = bar_chart("codes", "Codes <b>",
                              {{"<script>alert(1)</script>", 3}, {"\"onload=\"x", 1}}, "#123");
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_EQ(svg.find("\"onload"), std::string::npos);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_NE(svg.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(count(svg, "<rect"), 2u);
}

TEST(BarChart, EmptyAndZero) {
  EXPECT_NE(bar_chart("c", "C", {}, "#000").find("no data"), std::string::npos);
  std::string zero = bar_chart("c", "C", {{"x", 0}}, "#000");
  EXPECT_EQ(zero.find("no data"), std::string::npos);
  EXPECT_NE(zero.find("data-value=\"0\""), std::string::npos);
}

TEST(BarChart, LongLabelCutOnACharacterBoundary) {
  std::string label(34, 'a');
  label += "\xC3\xA9\xC3\xA9\xC3\xA9";  // é é é straddle the cut
  std::string svg = bar_chart("c", "C", {{label, 1}}, "#000");
  EXPECT_NE(svg.find("...<title>"), std::string::npos);
  EXPECT_EQ(svg.find("\xEF\xBF\xBD"), std::string::npos);  // no broken character
}

TEST(AccountingParse, IsoTime) {
  int64_t ms = 0;
  ASSERT_TRUE(parse_iso_utc_ms("2024-05-01T12:34:56.789Z", ms));
  EXPECT_EQ(ms, 1714566896789);
  ASSERT_TRUE(parse_iso_utc_ms("2024-05-01T12:34:56Z", ms));
  EXPECT_EQ(ms, 1714566896000);
  EXPECT_FALSE(parse_iso_utc_ms("2024-05-01 12:34", ms));
  EXPECT_FALSE(parse_iso_utc_ms("", ms));
  EXPECT_FALSE(parse_iso_utc_ms("2024-13-01T12:34:56Z", ms));
}

TEST(AccountingParse, CsvLine) {
  auto f = split_csv_line("a,\"b,c\",\"d \"\"e\"\"\",,f\r");
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[1], "b,c");
  EXPECT_EQ(f[2], "d \"e\"");
  EXPECT_EQ(f[3], "");
  EXPECT_EQ(f[4], "f");
}

TEST(ReportPage, EscapesDataAndHasNoScript) {
  ReportData d;
  d.task_path = "/tmp/<script>.db";
  d.status.total = 2;
  d.status.by_status[RcptStatus::kSent] = 2;
  d.settings = {{"sender", "\"><script>x</script>@example.com"}};
  d.destinations = {{"<img src=x onerror=alert(1)>", 1, 0, 0}};
  d.codes = {{"250", 2}};
  std::string html = render_report_html(d);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("data-key=\"sent\">2<"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no resource
  EXPECT_EQ(count(html, "<svg"), 6u);
}

}  // namespace
}  // namespace sb
