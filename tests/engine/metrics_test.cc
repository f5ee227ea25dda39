// The engine's metrics hooks on a FakeClock: outcomes as committed equal the task's counts,
// levels (in flight, connections) are back at zero after the run, per-destination outcomes
// add up, and the lookups are counted.
#include <gtest/gtest.h>

#include <sstream>

#include "engine/harness.h"

namespace sb::test {
namespace {

// The sum of the samples of `family` whose line contains `with` (a label pair).
uint64_t sum_of(const std::string& text, const std::string& family, const std::string& with) {
  uint64_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family + "{", 0) != 0 || line.find(with) == std::string::npos) continue;
    n += std::stoull(line.substr(line.rfind(' ') + 1));
  }
  return n;
}

TEST(EngineMetrics, CountsMatchTheTaskAndLevelsEndAtZero) {
  HarnessOptions o;
  o.direct = true;
  o.workers = 2;
  o.max_attempts = 2;
  o.retry_delay_ms = 200;
  o.plan.weights = {6, 0, 1, 0, 1, 0, 1, 0};  // 250, 451, 550, a drop before the dot
  std::vector<std::string> emails;
  for (size_t i = 0; i < 300; ++i) {
    emails.push_back("u" + std::to_string(i) + "@d" + std::to_string(i % 5) + ".example");
  }
  Harness h(emails, o);
  ASSERT_TRUE(h.run());
  StatusCounts c = h.counts();
  metrics::RunMetrics& m = h.shared().metrics();
  const metrics::RunCells& run = m.run();
  auto outcome = [&](metrics::Outcome k) { return run.outcomes[static_cast<size_t>(k)].value(); };
  EXPECT_EQ(outcome(metrics::Outcome::kSent), c.get(RcptStatus::kSent));
  EXPECT_EQ(outcome(metrics::Outcome::kFailed), c.get(RcptStatus::kFailed));
  EXPECT_GT(outcome(metrics::Outcome::kDeferred), 0u);
  EXPECT_EQ(outcome(metrics::Outcome::kSent) + outcome(metrics::Outcome::kFailed) +
                outcome(metrics::Outcome::kDeferred),
            h.coordinator().attempts());
  EXPECT_EQ(run.reply_2xx.value(), c.get(RcptStatus::kSent));
  EXPECT_EQ(run.reply_5xx.value(), c.get(RcptStatus::kFailed));
  for (size_t i = 0; i < o.workers; ++i) {
    EXPECT_EQ(m.worker(i).in_flight.value(), 0) << i;
    EXPECT_EQ(m.worker(i).connections_open.value(), 0) << i;
  }
  const std::string text = m.expose();
  const std::string dest = "smtpblast_destination_recipients_total";
  EXPECT_EQ(sum_of(text, dest, "outcome=\"sent\""), c.get(RcptStatus::kSent)) << text;
  EXPECT_EQ(sum_of(text, dest, "outcome=\"failed\""), c.get(RcptStatus::kFailed)) << text;
  EXPECT_GE(sum_of(text, "smtpblast_dns_lookups_total", "result=\"ok\""), 5u) << text;
  // Every attempt was a message the throttle let go (one recipient per message here).
  const std::string granted = "\nsmtpblast_throttle_granted_total ";
  ASSERT_NE(text.find(granted), std::string::npos);
  EXPECT_EQ(std::stoull(text.substr(text.find(granted) + granted.size())),
            h.coordinator().attempts());
}

}  // namespace
}  // namespace sb::test
