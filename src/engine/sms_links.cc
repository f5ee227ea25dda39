// The SMS transports on a worker's uv loop: N SMPP binds (SmppConn, a window each, reconnected
// after a drop) or an HTTP API (HttpClient, requests under way at once).
#include <algorithm>
#include <vector>

#include "engine/sms_run_config.h"
#include "engine/sms_worker.h"
#include "loop/http_client.h"
#include "smsgw/http_provider.h"

namespace sb {

namespace {

// Connections in a row that end without a bind before the run gives up on the SMSC.
constexpr uint32_t kMaxBindFailures = 5;
constexpr uint64_t kReconnectMs = 100;
constexpr uint64_t kReconnectMaxMs = 5000;

class SmppLink final : public SmsLink, public SmppHost, public SmppConnOwner {
 public:
  SmppLink(uv_loop_s* loop, LoopEnv& env, const SmsRunConfig& cfg, SmsLinkHost& host)
      : loop_(loop), cfg_(cfg), host_(host) {
    reconnect_ = env.timer([this] {
      reconnect_pending_ = false;
      poke();
    });
  }

  // SmsLink
  void poke() override {
    open_more();
    // A copy: a poke may end a session, whose close callback (later) edits conns_.
    poking_.assign(conns_.begin(), conns_.end());
    for (SmppConn* c : poking_) c->poke();
  }
  void abort(const std::string& why) override {
    aborted_ = true;
    reconnect_->stop();
    poking_.assign(conns_.begin(), conns_.end());
    for (SmppConn* c : poking_) c->abort(why, false);
  }
  size_t open() const override { return conns_.size(); }

  // SmppHost
  Next next_message(SmsMessage*& out) override {
    if (!answered_) {
      answered_ = true;  // a session asks only once it is bound
      host_.link_answered();
    }
    SmsJob* j = nullptr;
    Next n = host_.next_sms(j);
    if (n == Next::kMessage) out = &j->msg;
    return n;
  }
  void message_outcome(SmsMessage& m, const SmsOutcome& o) override {
    SmsJob* j = reinterpret_cast<SmsJob*>(m.cookie);
    host_.sms_outcome(*j, o.verdict, static_cast<int>(o.status), o.text, o.throttled,
                      o.message_ids);
  }
  void on_receipt(const DeliveryReceipt& r) override { host_.sms_receipt(r); }
  void on_mobile_originated(const MobileOriginated& mo) override { host_.sms_reply(mo); }

  // SmppConnOwner
  void smpp_conn_closed(SmppConn& c) override {
    conns_.erase(std::remove(conns_.begin(), conns_.end(), &c), conns_.end());
    const SmppEnd& end = c.session().end();
    if (c.session().bind_reached()) {
      failures_ = 0;
    } else {
      ++failures_;
    }
    if (!aborted_ && !failed_) {
      const std::string why = !c.why().empty() ? c.why() : end.text;
      if (end.fatal) {
        failed_ = true;
        host_.link_failed("SMSC " + cfg_.smpp.address + ": " + why, true);
      } else if (failures_ >= kMaxBindFailures) {
        failed_ = true;
        host_.link_failed("SMSC " + cfg_.smpp.address + ": no bind in " +
                              std::to_string(failures_) + " attempts; the last: " + why,
                          false);
      } else if (host_.link_wanted() && !reconnect_pending_) {
        // A dropped bind comes back (its open messages were deferred and are retried).
        reconnect_pending_ = true;
        const uint64_t delay = failures_ == 0
                                   ? kReconnectMs
                                   : std::min<uint64_t>(kReconnectMs << failures_, kReconnectMaxMs);
        reconnect_->start(delay);
      }
    }
    host_.link_idle();
  }

 private:
  void open_more() {
    if (aborted_ || failed_ || reconnect_pending_ || !host_.link_wanted()) return;
    while (conns_.size() < std::max<uint32_t>(1, cfg_.binds)) {
      auto c = SmppConn::start(loop_, cfg_.smpp, *this, *this);
      if (!c.ok()) {
        failed_ = true;
        host_.link_failed("SMSC " + cfg_.smpp.address + ": " + c.error().message, true);
        return;
      }
      conns_.push_back(*c);
    }
  }

  uv_loop_s* loop_;
  const SmsRunConfig& cfg_;
  SmsLinkHost& host_;
  std::unique_ptr<EngineTimer> reconnect_;
  std::vector<SmppConn*> conns_;
  std::vector<SmppConn*> poking_;
  uint32_t failures_ = 0;
  bool reconnect_pending_ = false;
  bool answered_ = false;
  bool aborted_ = false;
  bool failed_ = false;
};

class HttpLink final : public SmsLink {
 public:
  HttpLink(uv_loop_s* loop, const SmsRunConfig& cfg, SmsLinkHost& host)
      : loop_(loop), cfg_(cfg), host_(host) {}

  void poke() override {
    if (aborted_ || failed_) return;
    if (client_ == nullptr) {
      auto c = HttpClient::create(loop_);
      if (!c.ok()) {
        failed_ = true;
        host_.link_failed("HTTP client: " + c.error().message, true);
        return;
      }
      client_ = std::move(c).value();
    }
    while (in_flight_ < std::max<uint32_t>(1, cfg_.http_in_flight)) {
      SmsJob* j = nullptr;
      if (host_.next_sms(j) != SmppHost::Next::kMessage) break;
      ++in_flight_;
      HttpRequest req =
          build_http_sms(cfg_.http_cfg, cfg_.secret, SmsFields{j->row.email, cfg_.sender, j->text});
      client_->start(req, [this, j](HttpResponse& r) { answered(*j, r); });
    }
  }
  void abort(const std::string& why) override {
    (void)why;
    aborted_ = true;
    // Every request under way is answered "cancelled" (deferred) while the client goes.
    client_.reset();
  }
  size_t open() const override { return in_flight_; }

 private:
  void answered(SmsJob& j, HttpResponse& r) {
    --in_flight_;
    if (r.status != 0) host_.link_answered();
    HttpSmsOutcome o = evaluate_http_sms(cfg_.http_cfg, r);
    const SmsVerdict v = o.verdict == HttpSmsVerdict::kSent     ? SmsVerdict::kSent
                         : o.verdict == HttpSmsVerdict::kFailed ? SmsVerdict::kFailed
                                                                : SmsVerdict::kDeferred;
    ids_.clear();
    if (!o.message_id.empty()) ids_.push_back(o.message_id);
    host_.sms_outcome(j, v, r.status, o.reason, o.throttled, ids_);
    if (o.fatal && !failed_ && !aborted_) {
      failed_ = true;
      host_.link_failed("SMS provider " + cfg_.provider + ": " + o.reason, true);
    }
    poke();
    host_.link_idle();
  }

  uv_loop_s* loop_;
  const SmsRunConfig& cfg_;
  SmsLinkHost& host_;
  std::unique_ptr<HttpClient> client_;
  std::vector<std::string> ids_;
  uint32_t in_flight_ = 0;
  bool aborted_ = false;
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<SmsLink> make_smpp_link(uv_loop_s* loop, LoopEnv& env, const SmsRunConfig& cfg,
                                        SmsLinkHost& host) {
  return std::make_unique<SmppLink>(loop, env, cfg, host);
}

std::unique_ptr<SmsLink> make_http_link(uv_loop_s* loop, const SmsRunConfig& cfg,
                                        SmsLinkHost& host) {
  return std::make_unique<HttpLink>(loop, cfg, host);
}

}  // namespace sb
