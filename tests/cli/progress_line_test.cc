// The progress forms: the bar's segments and its degradation on narrow terminals, the log line,
// the JSONL object a pipeline reads, and --progress's values.
#include "cli/progress_line.h"

#include <gtest/gtest.h>

#include <string>

namespace sb {
namespace {

ProgressView view(double s, uint64_t sent, uint64_t failed, uint64_t deferred, uint64_t todo) {
  ProgressView p;
  p.seconds = s;
  p.sent = sent;
  p.failed = failed;
  p.deferred = deferred;
  p.attempts = sent + failed + deferred;
  p.todo = todo;
  return p;
}

size_t count(const std::string& s, char c) {
  size_t n = 0;
  for (char x : s) n += x == c ? 1 : 0;
  return n;
}

std::string bar_of(const std::string& line) {
  EXPECT_EQ(line.front(), '[') << line;
  return line.substr(1, line.find(']') - 1);
}

TEST(ProgressBar, SegmentsInOrderAndProportional) {
  // 1000 to do: 450 sent, 30 failed, 120 deferred, 400 not tried.
  const std::string line = progress_bar_line(view(15, 450, 30, 120, 1000), 200);
  const std::string bar = bar_of(line);
  EXPECT_EQ(bar.size(), 40u) << line;  // the widest bar
  EXPECT_EQ(bar,
            std::string(18, '#') + std::string(1, 'x') + std::string(5, '~') + std::string(16, '.'))
      << line;
  EXPECT_NE(line.find("] 48% sent 450 failed 30 deferred 120 left 520  30 msgs/s  ETA 17s"),
            std::string::npos)
      << line;
}

TEST(ProgressBar, OneFailureAmongManyStillShows) {
  const std::string bar = bar_of(progress_bar_line(view(10, 999'998, 1, 1, 1'000'000), 120));
  EXPECT_EQ(count(bar, 'x'), 1u) << bar;
  EXPECT_EQ(count(bar, '~'), 1u) << bar;
  EXPECT_EQ(count(bar, '.'), 0u) << bar;
  EXPECT_EQ(bar.size(), 40u);
}

TEST(ProgressBar, NeverWiderThanTheTerminal) {
  const ProgressView p = view(100, 123456, 789, 1011, 5'000'000);
  for (int cols = 1; cols <= 160; ++cols) {
    const std::string line = progress_bar_line(p, cols);
    EXPECT_LT(static_cast<int>(line.size()), std::max(cols, 1)) << cols << ": " << line;
    for (char c : line) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "control code at width " << cols;
  }
}

TEST(ProgressBar, DegradesBarFirstThenWords) {
  const ProgressView p = view(10, 300, 2, 5, 1000);
  const std::string wide = progress_bar_line(p, 120);
  EXPECT_EQ(wide.front(), '[') << wide;
  // Too narrow for a 10-cell bar: the words alone.
  const std::string words = progress_bar_line(p, 70);
  EXPECT_EQ(words.rfind("30% sent 300 failed 2 deferred 5 left 698", 0), 0u) << words;
  // Narrower: the figures in the bar's order.
  const std::string brief = progress_bar_line(p, 40);
  EXPECT_EQ(brief, "30% 300/2/5/698 30/s ETA 23s") << brief;
}

TEST(ProgressBar, UncountedRunHasNoBarAndNoEta) {
  const std::string line = progress_bar_line(view(2, 10, 0, 0, 0), 120);
  EXPECT_EQ(line, "sent 10 failed 0 deferred 0  5 msgs/s  ETA -");
}

TEST(ProgressBar, FinishedRun) {
  const std::string line = progress_bar_line(view(4, 100, 0, 0, 100), 120);
  EXPECT_EQ(bar_of(line), std::string(40, '#'));
  EXPECT_NE(line.find("100% sent 100"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0s"), std::string::npos) << line;
}

TEST(ProgressText, EtaUnits) {
  EXPECT_EQ(eta_text(-1), "-");
  EXPECT_EQ(eta_text(0), "0s");
  EXPECT_EQ(eta_text(59.4), "59s");
  EXPECT_EQ(eta_text(245), "4m05s");
  EXPECT_EQ(eta_text(7800), "2h10m");
  EXPECT_EQ(eta_text(3 * 86400 + 4 * 3600 + 5), "3d04h");
}

TEST(ProgressText, PlainLine) {
  EXPECT_EQ(progress_plain_line(view(40, 1200, 3, 7, 2000)),
            "progress: 40 s: 1200 recipients sent, 3 failed, 7 deferred; 1210 attempts; 30 "
            "msgs/s; 797 left; ETA 27s");
}

TEST(ProgressJson, FieldsAndFinal) {
  nlohmann::ordered_json j = progress_json(view(2.5, 50, 1, 4, 200), false);
  EXPECT_EQ(j["seconds"], 2.5);
  EXPECT_EQ(j["sent"], 50);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["deferred"], 4);
  EXPECT_EQ(j["attempts"], 55);
  EXPECT_EQ(j["left"], 149);
  EXPECT_EQ(j["msgs_per_s"], 20.0);
  EXPECT_EQ(j["eta_s"], 7);
  EXPECT_FALSE(j.contains("final"));
  nlohmann::ordered_json f = progress_json(view(3, 0, 0, 0, 0), true);
  EXPECT_TRUE(f["left"].is_null());
  EXPECT_TRUE(f["eta_s"].is_null());
  EXPECT_EQ(f["final"], true);
  EXPECT_EQ(f.dump().find('\n'), std::string::npos);  // one line
}

TEST(ProgressStyleFlag, Values) {
  EXPECT_EQ(parse_progress_style("auto", true).value(), ProgressStyle::kBar);
  EXPECT_EQ(parse_progress_style("auto", false).value(), ProgressStyle::kPlain);
  EXPECT_EQ(parse_progress_style("bar", false).value(), ProgressStyle::kBar);
  EXPECT_EQ(parse_progress_style("plain", true).value(), ProgressStyle::kPlain);
  EXPECT_EQ(parse_progress_style("jsonl", true).value(), ProgressStyle::kJsonl);
  EXPECT_EQ(parse_progress_style("none", true).value(), ProgressStyle::kNone);
  auto bad = parse_progress_style("json", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'json' is not one of auto, bar, plain, jsonl, none"),
            std::string::npos);
}

}  // namespace
}  // namespace sb
