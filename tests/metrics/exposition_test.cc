// The Prometheus text format as written: escaping, families, histogram series.
#include "metrics/exposition.h"

#include <gtest/gtest.h>

#include "metrics/http_server.h"
#include "metrics/run_metrics.h"

namespace sb::metrics {
namespace {

TEST(Exposition, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value(R"(a\b"c)"
                               "\nd"),
            R"(a\\b\"c\nd)");
  EXPECT_EQ(escape_label_value("mx.example.com"), "mx.example.com");
  EXPECT_EQ(escape_help("x\\y\n\"z\""), "x\\\\y\\n\"z\"");  // quotes stay in HELP
}

TEST(Exposition, FormatsValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(0.0025), "0.0025");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
}

TEST(Exposition, Names) {
  EXPECT_TRUE(valid_name("smtpblast_recipients_total"));
  EXPECT_TRUE(valid_name("a:b"));
  EXPECT_FALSE(valid_name("a:b", true));
  EXPECT_FALSE(valid_name("9x"));
  EXPECT_FALSE(valid_name("a-b"));
  EXPECT_FALSE(valid_name(""));
}

TEST(Exposition, FamilyAndSamples) {
  Exposition e;
  e.family("x_total", Type::kCounter, "Things\ncounted.");
  e.sample("x_total", {{"kind", "a\"b"}, {"z", "1"}}, uint64_t{3});
  e.family("y", Type::kGauge, "A level.");
  e.sample_signed("y", {}, -2);
  EXPECT_EQ(e.text(),
            "# HELP x_total Things\\ncounted.\n"
            "# TYPE x_total counter\n"
            "x_total{kind=\"a\\\"b\",z=\"1\"} 3\n"
            "# HELP y A level.\n"
            "# TYPE y gauge\n"
            "y -2\n");
}

TEST(Exposition, HistogramBucketsAreCumulativeWithInf) {
  static constexpr uint64_t kBounds[] = {1000, 10000};  // 1 ms, 10 ms
  Histogram h1(kBounds), h2(kBounds);
  h1.observe_us(500);     // <= 1 ms
  h1.observe_us(1000);    // le is inclusive
  h2.observe_us(5000);    // <= 10 ms
  h2.observe_us(200000);  // +Inf only
  HistogramCounts c(kBounds);
  c.add(h1);
  c.add(h2);
  Exposition e;
  e.family("d_seconds", Type::kHistogram, "Durations.");
  e.histogram("d_seconds", {{"k", "v"}}, c);
  EXPECT_EQ(e.text(),
            "# HELP d_seconds Durations.\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{k=\"v\",le=\"0.001\"} 2\n"
            "d_seconds_bucket{k=\"v\",le=\"0.01\"} 3\n"
            "d_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n"
            "d_seconds_sum{k=\"v\"} 0.2065\n"
            "d_seconds_count{k=\"v\"} 4\n");
}

TEST(RunMetrics, SumsWorkersAndCapsDestinationLabels) {
  RunMetrics m(2);
  m.set_direct(true);
  m.worker(0).in_flight.set(3);
  m.worker(1).in_flight.set(4);
  m.worker(1).waits[static_cast<size_t>(Wait::kRate)].add(5);
  m.destination(0, "mx1.a.test").outcomes[0].add(10);
  m.destination(1, "mx1.a.test").outcomes[0].add(1);  // same label, other loop: one series
  m.destination(1, "mx.b\"q.test").outcomes[1].add(2);
  m.destination(0, "mx.c.test").outcomes[2].add(7);  // past the cap of 2: "other"
  m.destination(1, "mx.d.test").outcomes[2].add(1);
  m.run().outcomes[static_cast<size_t>(Outcome::kSent)].add(11);
  std::string t = m.expose();
  EXPECT_NE(t.find("smtpblast_messages_in_flight 7\n"), std::string::npos) << t;
  EXPECT_NE(t.find("smtpblast_throttle_waits_total{limit=\"rate\"} 5\n"), std::string::npos);
  EXPECT_NE(t.find("smtpblast_recipients_total{outcome=\"sent\"} 11\n"), std::string::npos);
  EXPECT_NE(t.find("smtpblast_destination_recipients_total{destination=\"mx1.a.test\",outcome="
                   "\"sent\"} 11\n"),
            std::string::npos);
  EXPECT_NE(t.find("smtpblast_destination_recipients_total{destination=\"mx.b\\\"q.test\","
                   "outcome=\"failed\"} 2\n"),
            std::string::npos);
  EXPECT_NE(
      t.find(
          "smtpblast_destination_recipients_total{destination=\"other\",outcome=\"deferred\"} 8\n"),
      std::string::npos);
  EXPECT_EQ(t.find("mx.c.test"), std::string::npos);
  EXPECT_NE(t.find("smtpblast_run_finished 0\n"), std::string::npos);
  // Without a daily limit there is no quota family; remaining is unknown until published.
  EXPECT_EQ(t.find("smtpblast_daily_quota"), std::string::npos);
  EXPECT_EQ(t.find("smtpblast_recipients_remaining"), std::string::npos);
  // Every family has HELP and TYPE once, right before its samples.
  size_t helps = 0, types = 0;
  for (size_t p = 0; (p = t.find("# HELP ", p)) != std::string::npos; ++p) ++helps;
  for (size_t p = 0; (p = t.find("# TYPE ", p)) != std::string::npos; ++p) ++types;
  EXPECT_EQ(helps, types);
}

TEST(Http, ParsesRequestHeads) {
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n").state,
            RequestHead::State::kIncomplete);
  RequestHead h = parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(h.state, RequestHead::State::kComplete);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/metrics");
  EXPECT_EQ(parse_request_head("GET /metrics\r\n\r\n").state, RequestHead::State::kBad);
  EXPECT_EQ(parse_request_head("hello there\r\n\r\n").state, RequestHead::State::kBad);
  EXPECT_EQ(parse_request_head(std::string(kMaxHead + 1, 'a')).state,
            RequestHead::State::kTooLarge);
  // Split at every byte: incomplete until the blank line.
  std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
  for (size_t i = 0; i < req.size(); ++i) {
    EXPECT_EQ(parse_request_head(req.substr(0, i)).state, RequestHead::State::kIncomplete) << i;
  }
}

TEST(Http, Responds) {
  auto render = [] { return std::string("x 1\n"); };
  std::string ok = respond(parse_request_head("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), render);
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(ok.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_EQ(ok.substr(ok.size() - 8), "\r\n\r\nx 1\n");
  EXPECT_EQ(respond(parse_request_head("GET / HTTP/1.1\r\n\r\n"), render).rfind("HTTP/1.1 404", 0),
            0u);
  std::string post = respond(parse_request_head("POST /metrics HTTP/1.1\r\n\r\n"), render);
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_NE(post.find("Allow: GET\r\n"), std::string::npos);
  EXPECT_EQ(respond(parse_request_head("x\r\n\r\n"), render).rfind("HTTP/1.1 400", 0), 0u);
}

TEST(Http, BadAddressIsNamed) {
  auto s = MetricsServer::start("localhost:9464", [] { return std::string(); });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("localhost"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace sb::metrics
