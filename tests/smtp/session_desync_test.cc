// Reply desynchronisation, generated: pipelined dialogues (several transactions and RCPTs,
// DATA and BDAT) in which the server inserts a stray reply, drops one, or swaps two, at every
// position. Whatever happens, no recipient is `sent` unless the server's final reply for its
// message was a 2xx it really sent, and every recipient gets exactly one outcome.
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "fakes/fake_session_host.h"
#include "smtp/session.h"

namespace sb {
namespace {

using testing::FakeSessionHost;

struct TxnScript {
  int mail = 250;
  std::vector<int> rcpts;  // one reply code per RCPT
  int final = 250;         // the reply to the end of data (if the server gets that far)
};

enum class Mutation { kNone, kInsert, kDrop, kSwap };

const char* mutation_name(Mutation m) {
  switch (m) {
    case Mutation::kNone: return "none";
    case Mutation::kInsert: return "insert";
    case Mutation::kDrop: return "drop";
    case Mutation::kSwap: return "swap";
  }
  return "?";
}

// An SMTP server that answers the commands it has read, from a script, and misbehaves once:
// at reply number `at` it inserts a stray 250, drops the reply, or swaps it with the next.
// It never answers a command before reading it (the stray reply goes out with the reply it
// precedes).
class MutatingServer {
 public:
  MutatingServer(std::vector<TxnScript> script, bool enhanced, bool chunking, bool pipelining,
                 Mutation m, size_t at)
      : script_(std::move(script)), enhanced_(enhanced), chunking_(chunking),
        pipelining_(pipelining), mutation_(m), at_(at) {
    for (const TxnScript& t : script_) facts_.push_back(Facts{t.rcpts.size()});
  }

  void connect() { reply(text(220, "2.0.0", "mx ESMTP")); }

  // Bytes from the client; the replies they call for become output.
  void receive(std::string_view in) {
    in_.append(in);
    for (;;) {
      if (bdat_left_ > 0) {
        size_t n = std::min(bdat_left_, in_.size());
        in_.erase(0, n);
        bdat_left_ -= n;
        if (bdat_left_ > 0) return;
        end_of_data();
        continue;
      }
      size_t nl = in_.find("\r\n");
      if (nl == std::string::npos || closed_) return;
      std::string line = in_.substr(0, nl);
      in_.erase(0, nl + 2);
      command(line);
    }
  }

  std::string take_output() {
    std::string s;
    s.swap(out_);
    return s;
  }

  // What the server did with each message: what a `sent` recipient must be backed by.
  struct Facts {
    explicit Facts(size_t n) : rcpt_sent(n, false) {}
    bool got_end = false;      // the server read the end of its data
    bool final_sent = false;   // the server sent its final reply (not dropped)
    int final = 0;             // that reply's code
    std::vector<bool> rcpt_sent;  // the server sent its RCPT reply (not dropped)
  };
  const std::vector<Facts>& facts() const { return facts_; }

 private:
  std::string text(int code, const char* enh, const std::string& msg) const {
    std::string s = std::to_string(code) + " ";
    if (enhanced_ && enh != nullptr) s.append(enh).push_back(' ');
    return s + msg + "\r\n";
  }
  static const char* enh_for(int code, bool addressing) {
    if (code < 300) return addressing ? "2.1.5" : "2.0.0";
    if (code == 552) return "5.5.3";
    if (code < 500) return "4.3.0";
    return addressing ? "5.1.1" : "5.7.1";
  }

  // Every reply goes through here, numbered; `on_sent` runs if it is sent.
  void reply(std::string r, std::function<void()> on_sent = nullptr) {
    size_t n = count_++;
    if (n == at_) {
      switch (mutation_) {
        case Mutation::kInsert:
          out_.append(text(250, "2.0.0", "stray"));
          break;
        case Mutation::kDrop:
          return;
        case Mutation::kSwap:
          swapped_ = Pending{std::move(r), std::move(on_sent)};
          return;
        case Mutation::kNone: break;
      }
    }
    out_.append(r);
    if (on_sent) on_sent();
    if (swapped_ && n == at_ + 1) {
      out_.append(swapped_->r);
      if (swapped_->on_sent) swapped_->on_sent();
      swapped_.reset();
    }
  }

  void end_of_data() {
    in_data_ = false;
    int j = cur_;
    if (j < 0 || j >= static_cast<int>(script_.size()) || accepted_ == 0) {
      reply(text(554, "5.5.1", "no valid recipients"));
      return;
    }
    facts_[j].got_end = true;
    int code = script_[j].final;
    reply(text(code, enh_for(code, false), "message " + std::to_string(j)), [this, j, code] {
      facts_[j].final_sent = true;
      facts_[j].final = code;
    });
    cur_ = -1;
  }

  void command(const std::string& line) {
    if (in_data_) {
      if (line == ".") end_of_data();
      return;
    }
    std::string verb = line.substr(0, line.find(' '));
    if (verb == "EHLO") {
      std::string caps = "250-mx\r\n";
      if (pipelining_) caps += "250-PIPELINING\r\n";
      if (chunking_) caps += "250-CHUNKING\r\n";
      if (enhanced_) caps += "250-ENHANCEDSTATUSCODES\r\n";
      reply(caps + "250 8BITMIME\r\n");
    } else if (verb == "MAIL") {
      // MAIL FROM:<sJ@x.test>
      cur_ = std::stoi(line.substr(line.find("<s") + 2));
      accepted_ = 0;
      int code = script_[cur_].mail;
      if (code >= 300) cur_ = -1;
      reply(text(code, code < 300 ? "2.1.0" : "4.3.0", "sender"));
    } else if (verb == "RCPT") {
      // RCPT TO:<rJ_I@y.test>
      size_t p = line.find("<r") + 2;
      int j = std::stoi(line.substr(p));
      int i = std::stoi(line.substr(line.find('_', p) + 1));
      int code = j == cur_ ? script_[j].rcpts[i] : 503;
      if (code < 300) ++accepted_;
      reply(text(code, enh_for(code, true), "rcpt"), [this, j, i] {
        facts_[j].rcpt_sent[i] = true;
      });
    } else if (verb == "DATA") {
      if (cur_ < 0 || accepted_ == 0) {
        reply(text(554, "5.5.1", "no valid recipients"));
      } else {
        in_data_ = true;
        reply("354 go ahead\r\n");
      }
    } else if (verb == "BDAT") {
      // BDAT n LAST
      bdat_left_ = std::stoul(line.substr(5));
      if (bdat_left_ == 0) end_of_data();
    } else if (verb == "NOOP") {
      reply(text(250, "2.0.0", "ok"));
    } else if (verb == "RSET") {
      cur_ = -1;
      reply(text(250, "2.0.0", "reset"));
    } else if (verb == "QUIT") {
      reply(text(221, "2.0.0", "bye"));
      closed_ = true;
    } else {
      reply(text(502, "5.5.2", "what"));
    }
  }

  struct Pending {
    std::string r;
    std::function<void()> on_sent;
  };
  std::vector<TxnScript> script_;
  std::vector<Facts> facts_;
  bool enhanced_, chunking_, pipelining_;
  Mutation mutation_;
  size_t at_;
  size_t count_ = 0;
  std::optional<Pending> swapped_;
  std::string in_, out_;
  int cur_ = -1;
  int accepted_ = 0;
  size_t bdat_left_ = 0;
  bool in_data_ = false;
  bool closed_ = false;
};

struct Mode {
  const char* name;
  bool pipelining, chunking, enhanced;
  uint32_t window;
};

// Plays one dialogue; returns a failure description, or "" when the invariants hold.
// `hang_up`: when the server has nothing more to say, it closes the connection instead of
// leaving the client to time out.
std::string run(const std::vector<TxnScript>& script, const Mode& mode, Mutation m, size_t at,
                size_t step, bool idle_host, bool hang_up) {
  const bool enhanced = mode.enhanced;
  SessionConfig cfg;
  cfg.helo = "client.test";
  cfg.window = mode.window;
  FakeSessionHost host;
  host.done_when_empty = !idle_host;
  for (size_t j = 0; j < script.size(); ++j) {
    std::vector<std::string> rcpts;
    for (size_t i = 0; i < script[j].rcpts.size(); ++i) {
      rcpts.push_back("r" + std::to_string(j) + "_" + std::to_string(i) + "@y.test");
    }
    host.add("s" + std::to_string(j) + "@x.test", rcpts, "Subject: " + std::to_string(j) +
                                                             "\r\n\r\nbody\r\n");
  }
  Outbox out;
  Session session(cfg, host, out);
  host.poke_on_done = &session;  // as the mailing engine may
  MutatingServer server(script, mode.enhanced, mode.chunking, mode.pipelining, m, at);
  uint64_t now = 1000;
  session.on_connected(now);
  server.connect();
  for (int turn = 0; turn < 500 && !session.wants_close(); ++turn) {
    std::string emitted = server.take_output();
    if (emitted.empty()) {
      if (session.deadline_ms() == 0 || hang_up) break;
      now = std::max(now, session.deadline_ms());
      session.on_timer(now);
    } else {
      for (size_t i = 0; i < emitted.size() && !session.wants_close(); i += step) {
        session.on_data(std::string_view(emitted).substr(i, step), now);
      }
    }
    server.receive(out.flatten());
    out.clear();
  }
  if (!session.wants_close()) session.on_closed("end of test", now);

  std::string why;
  if (!host.accounted()) why += "not every recipient has exactly one outcome; ";
  for (const auto& o : host.outcomes) {
    if (o.verdict != Verdict::kSent) continue;
    int j = std::stoi(o.rcpt.substr(1));
    int i = std::stoi(o.rcpt.substr(o.rcpt.find('_') + 1));
    const auto& f = server.facts()[j];
    bool ok = f.got_end && f.final_sent && f.final >= 200 && f.final < 300;
    // A swap can trade two RCPT replies (both valid answers); otherwise the server must
    // have accepted this very recipient.
    if (m != Mutation::kSwap) ok = ok && script[j].rcpts[i] < 300 && f.rcpt_sent[i];
    // Without enhanced codes two swapped replies "250" and "451" at the boundary of two
    // messages (end of data, next MAIL) are valid answers to either command: no client can
    // tell that order from the true one. With ENHANCEDSTATUSCODES it can (2.1.0 cannot end a
    // message), and is checked.
    if (m == Mutation::kSwap && !enhanced) ok = true;
    if (!ok) {
      why += o.rcpt + " sent (" + std::to_string(o.code) + " " + o.text +
             ") but the server's final reply was " +
             (f.final_sent ? std::to_string(f.final) : std::string("never sent")) + "; ";
    }
  }
  if (!why.empty()) why += "end: " + session.end_reason();
  return why;
}

std::vector<std::vector<TxnScript>> dialogues() {
  return {
      // All good: three messages, two recipients each.
      {{250, {250, 250}, 250}, {250, {250, 250}, 250}, {250, {250, 250}, 250}},
      // Mixed: refused and deferred recipients, a refused message, a message nobody takes,
      // a deferred sender, a 552 "too many recipients", a deferred message.
      {{250, {250, 550, 451}, 250},
       {250, {250}, 554},
       {250, {550}, 250},
       {451, {250}, 250},
       {250, {250, 552, 552}, 250},
       {250, {250, 250}, 451},
       {250, {250}, 250}},
  };
}

const Mode kModes[] = {
    {"DATA pipelined", true, false, false, 8},
    {"DATA pipelined, enhanced codes", true, false, true, 8},
    {"BDAT pipelined, enhanced codes", true, true, true, 8},
    {"BDAT pipelined, window 1", true, true, true, 1},
    {"DATA, no pipelining", false, false, false, 8},
    {"BDAT, no pipelining", false, true, true, 8},
};

TEST(SessionDesync, UnmutatedDialoguesSendWhatTheServerAccepted) {
  auto ds = dialogues();
  for (const Mode& mode : kModes) {
    for (size_t d = 0; d < ds.size(); ++d) {
      std::string why = run(ds[d], mode, Mutation::kNone, SIZE_MAX, 1000, false, false);
      EXPECT_EQ(why, "") << mode.name << ", dialogue " << d;
    }
  }
}

TEST(SessionDesync, InsertDropOrSwapOneReplyAtEveryPosition) {
  auto ds = dialogues();
  size_t runs = 0;
  size_t failures = 0;
  for (const Mode& mode : kModes) {
    for (size_t d = 0; d < ds.size(); ++d) {
      // 60 replies is more than any of these dialogues produces.
      for (size_t at = 0; at < 60; ++at) {
        for (Mutation m : {Mutation::kInsert, Mutation::kDrop, Mutation::kSwap}) {
          for (size_t step : {size_t{1}, size_t{5}, size_t{100000}}) {
            for (int variant = 0; variant < 4; ++variant) {
              const bool idle = variant & 1, hang_up = variant & 2;
              std::string why = run(ds[d], mode, m, at, step, idle, hang_up);
              ++runs;
              if (!why.empty()) {
                ++failures;
                if (failures <= 20) {
                  ADD_FAILURE() << mode.name << ", dialogue " << d << ", " << mutation_name(m)
                                << " at reply " << at << ", read size " << step
                                << (idle ? ", idle host" : "")
                                << (hang_up ? ", server hangs up" : "") << ": " << why;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(runs, 1000u);
  EXPECT_EQ(failures, 0u) << "of " << runs << " runs";
}

// The sent outcomes are the right ones when nothing goes wrong (the test above would pass
// for a session that never sends anything).
TEST(SessionDesync, MixedDialogueOutcomes) {
  for (const Mode& mode : kModes) {
    SessionConfig cfg;
    cfg.helo = "client.test";
    cfg.window = mode.window;
    FakeSessionHost host;
    auto script = dialogues()[1];
    for (size_t j = 0; j < script.size(); ++j) {
      std::vector<std::string> rcpts;
      for (size_t i = 0; i < script[j].rcpts.size(); ++i) {
        rcpts.push_back("r" + std::to_string(j) + "_" + std::to_string(i) + "@y.test");
      }
      host.add("s" + std::to_string(j) + "@x.test", rcpts, "m\r\n");
    }
    Outbox out;
    Session session(cfg, host, out);
    MutatingServer server(script, mode.enhanced, mode.chunking, mode.pipelining,
                          Mutation::kNone, SIZE_MAX);
    session.on_connected(1);
    server.connect();
    for (int turn = 0; turn < 100 && !session.wants_close(); ++turn) {
      std::string emitted = server.take_output();
      if (emitted.empty()) break;
      session.on_data(emitted, 1);
      server.receive(out.flatten());
      out.clear();
    }
    EXPECT_TRUE(session.wants_close()) << mode.name;
    EXPECT_EQ(session.end_reason(), "") << mode.name;
    auto v = [&](const char* r) { return host.find(r) ? host.find(r)->verdict : Verdict(99); };
    EXPECT_EQ(v("r0_0@y.test"), Verdict::kSent) << mode.name;
    EXPECT_EQ(v("r0_1@y.test"), Verdict::kFailed) << mode.name;
    EXPECT_EQ(v("r0_2@y.test"), Verdict::kDeferred) << mode.name;
    EXPECT_EQ(v("r1_0@y.test"), Verdict::kFailed) << mode.name;
    EXPECT_EQ(v("r2_0@y.test"), Verdict::kFailed) << mode.name;
    EXPECT_EQ(v("r3_0@y.test"), Verdict::kDeferred) << mode.name;
    EXPECT_EQ(v("r4_0@y.test"), Verdict::kSent) << mode.name;
    EXPECT_EQ(v("r4_1@y.test"), Verdict::kDeferred) << mode.name;
    EXPECT_EQ(v("r5_0@y.test"), Verdict::kDeferred) << mode.name;
    EXPECT_EQ(v("r6_0@y.test"), Verdict::kSent) << mode.name;
    EXPECT_TRUE(host.accounted()) << mode.name;
  }
}

}  // namespace
}  // namespace sb
