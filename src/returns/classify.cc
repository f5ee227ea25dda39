// Classifier: parses the rule table once and matches every regex in one RE2::Set pass.
#include "returns/classify.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <cctype>

#include "base/text.h"
#include "returns/fields.h"

namespace sb {

struct Classifier::Rule {
  BounceClass cls = BounceClass::kUnknown;
  std::string category;
  // Status pattern: class digit and two numeric parts, -1 = any; any_status: "*" alone.
  bool any_status = true;
  int part[3] = {-1, -1, -1};
  int regex = -1;  // index in set_, or -1 for none
  int line = 0;
  bool user = false;
};

struct Classifier::Matcher {
  explicit Matcher(const RE2::Options& o) : set(o, RE2::UNANCHORED) {}
  RE2::Set set;
};

namespace {

std::string_view next_word(std::string_view& s) {
  s = trim_space(s, " \t\r");
  size_t end = 0;
  while (end < s.size() && s[end] != ' ' && s[end] != '\t') ++end;
  std::string_view w = s.substr(0, end);
  s = trim_space(s.substr(end), " \t\r");
  return w;
}

// "5.1.*" -> {5, 1, -1}; false when malformed.
bool parse_pattern(std::string_view p, int out[3]) {
  int k = 0;
  size_t pos = 0;
  while (k < 3) {
    size_t dot = p.find('.', pos);
    std::string_view piece = p.substr(pos, dot == std::string_view::npos ? p.npos : dot - pos);
    if (piece == "*") {
      out[k] = -1;
    } else {
      if (piece.empty() || piece.size() > 3) return false;
      int v = 0;
      for (char c : piece) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
      }
      out[k] = v;
    }
    ++k;
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  if (k != 3 || p.find('.', pos) != std::string_view::npos) return false;
  return out[0] == -1 || out[0] == 2 || out[0] == 4 || out[0] == 5;
}

bool parse_code(std::string_view status, int out[3]) {
  if (status.empty()) return false;
  return parse_pattern(status, out) && out[0] != -1 && out[1] != -1 && out[2] != -1;
}

}  // namespace

const char* class_name(BounceClass c) {
  static constexpr const char* kNames[] = {"hard",      "soft",      "block",  "complaint",
                                           "autoreply", "delivered", "unknown"};
  static_assert(sizeof kNames / sizeof kNames[0] == kBounceClassCount);
  auto i = static_cast<size_t>(c);
  return i < kBounceClassCount ? kNames[i] : "unknown";
}

Classifier::Classifier() = default;
Classifier::Classifier(Classifier&&) noexcept = default;
Classifier& Classifier::operator=(Classifier&&) noexcept = default;
Classifier::~Classifier() = default;

size_t Classifier::size() const { return rules_.size(); }

Result<Classifier> Classifier::create(std::string_view user_rules, std::string_view user_name) {
  Classifier c;
  RE2::Options opts;
  opts.set_case_sensitive(false);
  opts.set_log_errors(false);
  opts.set_max_mem(64 << 20);
  c.set_ = std::make_unique<Matcher>(opts);
  int regexes = 0;
  auto load = [&](std::string_view text, std::string_view name, bool user) -> Status {
    size_t pos = 0;
    int line_no = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view line =
          text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? text.size() : nl + 1;
      ++line_no;
      line = trim_space(line, " \t\r");
      if (line.empty() || line.front() == '#') continue;
      auto bad = [&](std::string why) {
        return make_error(ErrDomain::kConfig,
                          std::string(name) + " line " + std::to_string(line_no) + ": " + why);
      };
      Rule r;
      r.line = line_no;
      r.user = user;
      std::string_view cls = next_word(line);
      if (cls == "hard") {
        r.cls = BounceClass::kHard;
      } else if (cls == "soft") {
        r.cls = BounceClass::kSoft;
      } else if (cls == "block") {
        r.cls = BounceClass::kBlock;
      } else {
        return bad("class '" + std::string(cls.substr(0, 40)) + "' is not hard, soft or block");
      }
      std::string_view cat = next_word(line);
      if (cat.empty()) return bad("a category is missing");
      r.category = std::string(cat.substr(0, 40));
      std::string_view status = next_word(line);
      if (status.empty()) return bad("a status pattern is missing (use * for any)");
      if (status != "*") {
        r.any_status = false;
        if (!parse_pattern(status, r.part)) {
          return bad("'" + std::string(status.substr(0, 40)) +
                     "' is not a status pattern like 5.1.1, 5.1.* or *");
        }
      }
      if (!line.empty()) {
        std::string err;
        int idx = c.set_->set.Add(line, &err);
        if (idx < 0) return bad("bad regular expression: " + err);
        r.regex = idx;
        ++regexes;
      }
      c.rules_.push_back(std::move(r));
    }
    return {};
  };
  if (!user_rules.empty()) {
    if (auto st = load(user_rules, user_name, true); !st) return st.error();
  }
  if (auto st = load(default_rules_text(), "default rules", false); !st) return st.error();
  if (regexes > 0 && !c.set_->set.Compile()) {
    return make_error(ErrDomain::kConfig,
                      std::string(user_name) + ": the rules' regular expressions are too large");
  }
  if (regexes == 0) c.set_.reset();
  return c;
}

Classification Classifier::classify(const RecipientReport& rr) const {
  Classification out;
  if (rr.action == "delivered" || rr.action == "relayed" || rr.action == "expanded") {
    out.cls = BounceClass::kDelivered;
    out.category = rr.action;
    return out;
  }
  int code[3] = {-1, -1, -1};
  bool have_code = parse_code(rr.status, code);
  if (!have_code) {
    std::string s = find_status(rr.diagnostic);
    have_code = parse_code(s, code);
  }
  // A "delayed" report is temporary whatever its code says.
  if (rr.action == "delayed" && have_code && code[0] == 5) code[0] = 4;
  std::vector<int> hits;
  if (set_ && !rr.diagnostic.empty()) set_->set.Match(rr.diagnostic, &hits);
  std::sort(hits.begin(), hits.end());
  for (const Rule& r : rules_) {
    if (!r.any_status) {
      if (!have_code) continue;
      bool ok = true;
      for (int k = 0; k < 3; ++k) ok = ok && (r.part[k] == -1 || r.part[k] == code[k]);
      if (!ok) continue;
    }
    if (r.regex >= 0 && !std::binary_search(hits.begin(), hits.end(), r.regex)) continue;
    // A text rule for a permanent reason (hard) must not turn a temporary code into a
    // hard bounce: "4.x.x user unknown" (a greylisting directory lookup) stays soft.
    BounceClass cls = r.cls;
    if (cls == BounceClass::kHard && have_code && code[0] == 4) cls = BounceClass::kSoft;
    out.cls = cls;
    out.category = r.category;
    out.rule_line = r.line;
    out.user_rule = r.user;
    return out;
  }
  if (rr.action == "failed") {
    out.cls = BounceClass::kHard;
    out.category = "other";
  } else if (rr.action == "delayed") {
    out.cls = BounceClass::kSoft;
    out.category = "delayed";
  }
  return out;
}

Classification Classifier::classify(const ReturnReport& r, size_t i) const {
  Classification out;
  switch (r.kind) {
    case ReturnKind::kArf:
      out.cls = BounceClass::kComplaint;
      out.category = r.feedback_type.empty() ? "abuse" : r.feedback_type;
      return out;
    case ReturnKind::kAutoReply:
      out.cls = BounceClass::kAutoReply;
      out.category = r.format;
      return out;
    case ReturnKind::kUnknown: return out;
    case ReturnKind::kDsn: break;
  }
  if (i >= r.recipients.size()) return out;
  return classify(r.recipients[i]);
}

Classification Classifier::classify_reply(int code, std::string_view text) const {
  RecipientReport rr;
  rr.diagnostic = std::string(text);
  std::string s = find_status(text);
  if (s.empty() && code >= 400 && code < 600) s = std::to_string(code / 100) + ".0.0";
  rr.status = s;
  rr.action = code >= 500 ? "failed" : code >= 400 ? "delayed" : "delivered";
  return classify(rr);
}

}  // namespace sb
